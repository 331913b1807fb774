"The main job, `python -m fastbook_core`, as a user runs it."
import subprocess, sys
import pytest


def run(*args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'fastbook_core', *args], capture_output=True, text=True, timeout=timeout)


def test_main_job_trains_and_writes_outputs(tmp_path):
    r = run('--epochs', '3', '--out', str(tmp_path / 'out'))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith('accuracy: ')
    assert float(lines[-1].split()[1]) > 0.9
    assert sum(l.split()[:1] == ['epoch'] for l in lines) == 2        # lr_find's table, then fit_one_cycle's
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'confusion_matrix.png', 'digits_cnn.pth', 'losses.png', 'lr_find.png', 'lr_mom.png', 'metrics.png']
    for p in (tmp_path / 'out').glob('*.png'): assert p.read_bytes()[:4] == b'\x89PNG'


def test_help():
    r = run('--help')
    assert r.returncode == 0 and '--epochs' in r.stdout and '--out' in r.stdout


@pytest.mark.parametrize('args, msg', [(['--epochs', '0'], '--epochs must be at least 1'),
                                       (['--lr', 'fast'], "invalid float value: 'fast'"),
                                       (['--bs', '-2'], '--bs must be at least 1'),
                                       (['--nope'], 'unrecognized arguments: --nope')])
def test_bad_flags(args, msg):
    r = run(*args)
    assert r.returncode == 2 and msg in r.stderr
