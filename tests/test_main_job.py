"""The main job as a user runs it: `python -m fastbook_core` and the `fastbook_train` console script, in subprocesses.

Flags and their defaults, exit codes (0 done, 1 the job failed, 2 bad arguments) with one line on stderr, the
traceback only when asked for, and the message of a machine without scikit-learn.
"""
import os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
import torch

MODULE = [sys.executable, '-m', 'fastbook_core']
OUTPUTS = ['confusion_matrix.png', 'digits_cnn.pth', 'losses.png', 'lr_find.png', 'lr_mom.png', 'metrics.png']
# argparse wraps its help to the terminal's width: a wide one keeps each option on one line
ENV = {**os.environ, 'COLUMNS': '250', 'MPLBACKEND': 'Agg'}
ENV.pop('FASTBOOK_DEBUG', None)


def run(*args, cmd=MODULE, env=None, timeout=300, cwd=None):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env={**ENV, **(env or {})},
                          cwd=cwd)


def console_script() -> list[str]:
    "The `fastbook_train` script installed beside this interpreter (pip puts it there)."
    path = Path(sys.executable).parent / 'fastbook_train'
    if not path.exists(): path = shutil.which('fastbook_train')
    if path is None: pytest.skip('fastbook_train is not installed: pip install -e . installs it')
    return [str(path)]


def one_line_error(r, code: int, prog: str = 'python -m fastbook_core') -> str:
    "The single line that a failed run writes to stderr, checked for its exit code, prefix and the lack of a traceback."
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert r.stderr.startswith(f'{prog}: error: '), r.stderr
    return r.stderr.strip()


@pytest.fixture(scope='module')
def module_run(tmp_path_factory):
    "One short run of `python -m fastbook_core`, shared by the tests that read it."
    out = tmp_path_factory.mktemp('job') / 'out'
    return out, run('--epochs', '2', '--device', 'cpu', '--out', str(out), cwd=tmp_path_factory.mktemp('cwd'))


def test_main_job_trains_and_writes_outputs(module_run):
    out, r = module_run
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith('accuracy: ') and float(lines[-1].split()[1]) > 0.8, lines[-1]
    assert 'device: cpu' in lines
    head = max(i for i, l in enumerate(lines) if l.split() == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time'])
    assert [l.split()[0] for l in lines[head + 1:head + 3]] == ['0', '1'], lines  # fit_one_cycle's table: 2 epochs
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    for p in out.glob('*.png'): assert p.read_bytes()[:4] == b'\x89PNG'


def test_console_script_trains_the_same(module_run, tmp_path):
    "fastbook_train is the same job: same defaults, same seed, so the same accuracy as `python -m fastbook_core`."
    _, r_module = module_run
    r = run('--epochs', '2', '--device', 'cpu', '--out', str(tmp_path / 'out'), cmd=console_script(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == r_module.stdout.splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == OUTPUTS


def test_help_names_every_option_with_its_default():
    r = run('--help')
    assert r.returncode == 0 and r.stderr == ''
    assert r.stdout.startswith('usage: python -m fastbook_core ')
    defaults = {'--epochs': '(default: 8)', '--lr': '(default: 0.01)', '--bs': '(default: 64)', '--seed': '(default: 42)',
                '--device': '(default: cuda when available, else cpu)', '--out': '(default: out)',
                '--silent': '(default: off)', '--debug': '(default: off; also FASTBOOK_DEBUG=1)'}
    options = re.findall(r'^  (--\w+)', r.stdout, flags=re.M)
    assert options == list(defaults) and '  -h, --help ' in r.stdout, options
    for opt, default in defaults.items():
        line = next(l for l in r.stdout.splitlines() if l.startswith(f'  {opt} '))
        assert default in line, line
    assert '{cpu,cuda}' in r.stdout
    assert 'pip install "fastbook_core[datasets]"' in r.stdout
    assert 'exit status: 0 done, 1 the job failed' in r.stdout


def test_console_script_help_is_the_same():
    r, r_module = run('--help', cmd=console_script()), run('--help')
    assert r.returncode == 0
    assert r.stdout.replace('usage: fastbook_train', 'usage: python -m fastbook_core') == r_module.stdout


BAD_FLAGS = [
    (['--epochs', '0'], '--epochs must be at least 1, not 0'),
    (['--epochs', '-3'], '--epochs must be at least 1, not -3'),
    (['--epochs', '1.5'], "argument --epochs: invalid int value: '1.5'"),
    (['--lr', 'fast'], "argument --lr: invalid float value: 'fast'"),
    (['--lr', '0'], '--lr must be a positive number, not 0.0'),
    (['--lr', 'nan'], '--lr must be a positive number, not nan'),
    (['--lr', 'inf'], '--lr must be a positive number, not inf'),
    (['--bs', '-2'], '--bs must be between 1 and 1438 (the training set), not -2'),
    (['--bs', '5000'], '--bs must be between 1 and 1438 (the training set), not 5000'),
    (['--seed', 'x'], "argument --seed: invalid int value: 'x'"),
    (['--seed', str(2**64)], f'--seed must be between -2**63 and 2**64-1, not {2**64}'),
    (['--device', 'tpu'], "argument --device: invalid choice: 'tpu' (choose from"),
    (['--out'], 'argument --out: expected one argument'),
    (['--nope'], 'unrecognized arguments: --nope'),
    (['--ep', '1'], 'unrecognized arguments: --ep 1'),  # no abbreviations: a script stays valid when options are added
    (['train'], 'unrecognized arguments: train')]


@pytest.mark.parametrize('args, msg', BAD_FLAGS)
def test_bad_flags_return_2_with_one_line(args, msg, tmp_path, capsys):
    "Every refused flag, through `main` in this process (a subprocess each would cost seconds of imports)."
    from fastbook_core.cli import main
    out = [] if args == ['--out'] else ['--out', str(tmp_path / 'out')]
    assert main([*args, *out], prog='python -m fastbook_core') == 2
    r = capsys.readouterr()
    assert r.out == '' and r.err.count('\n') == 1, r.err
    assert r.err.startswith('python -m fastbook_core: error: ') and msg in r.err, r.err
    assert r.err.endswith('(see python -m fastbook_core --help)\n') and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args, msg', [BAD_FLAGS[0], BAD_FLAGS[3], BAD_FLAGS[-2]])
def test_bad_flags_exit_2_from_the_command_line(args, msg, tmp_path):
    line = one_line_error(run(*args, '--out', str(tmp_path / 'out')), 2)
    assert msg in line and line.endswith('(see python -m fastbook_core --help)'), line
    assert not (tmp_path / 'out').exists()


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / 'f').write_text('mine')
    line = one_line_error(run('--out', str(tmp_path / 'f')), 2)
    assert f'--out {tmp_path / "f"} is a file, not a folder' in line
    assert (tmp_path / 'f').read_text() == 'mine'


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_without_a_gpu_exits_2(tmp_path):
    line = one_line_error(run('--device', 'cuda', '--out', str(tmp_path / 'out')), 2)
    assert '--device cuda: CUDA was asked for, but torch' in line and 'sees no CUDA device here' in line, line
    assert 'use the CPU (--device cpu)' in line and line.endswith('on a machine with a GPU (see python -m fastbook_core --help)')
    assert not (tmp_path / 'out').exists()


def test_console_script_exit_codes_are_the_same():
    r, r_module = run('--epochs', '0', cmd=console_script()), run('--epochs', '0')
    line = one_line_error(r, 2, prog='fastbook_train')
    assert line.replace('fastbook_train', 'python -m fastbook_core') == r_module.stderr.strip()


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_console_script_cuda_without_a_gpu_exits_2():
    line = one_line_error(run('--device', 'cuda', cmd=console_script()), 2, prog='fastbook_train')
    assert 'sees no CUDA device here' in line, line


def test_training_failure_exits_1_with_one_line(tmp_path):
    "A learning rate far too high makes the loss nan: a failed job (1), with the fix, and no model saved."
    out = tmp_path / 'out'
    line = one_line_error(run('--lr', '1e9', '--epochs', '1', '--silent', '--out', str(out)), 1)
    assert 'FloatingPointError: training diverged: the validation loss is nan' in line, line
    assert 'train with a smaller learning rate' in line and line.endswith('(--debug or FASTBOOK_DEBUG=1 shows the traceback)')
    assert not (out / 'digits_cnn.pth').exists()


def _blocked_parent(tmp_path):
    (tmp_path / 'file').write_text('')
    return str(tmp_path / 'file' / 'out')   # its parent is a file: making the folder fails, once the data is loaded


def test_os_failure_exits_1(tmp_path):
    out = _blocked_parent(tmp_path)
    line = one_line_error(run('--epochs', '1', '--silent', '--out', out), 1)
    assert 'NotADirectoryError' in line or 'FileExistsError' in line, line
    assert line.endswith('(--debug or FASTBOOK_DEBUG=1 shows the traceback)'), line


@pytest.mark.parametrize('argv, env', [(['--debug'], {}), ([], {'FASTBOOK_DEBUG': '1'}), ([], {'FASTBOOK_DEBUG': '0'})])
def test_debug_shows_the_traceback(argv, env, tmp_path, capsys, monkeypatch):
    from fastbook_core.cli import main
    monkeypatch.delenv('FASTBOOK_DEBUG', raising=False)
    for k, v in env.items(): monkeypatch.setenv(k, v)
    assert main(['--epochs', '1', '--silent', '--out', _blocked_parent(tmp_path), *argv]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith('fastbook_train: error: '), err
    if env.get('FASTBOOK_DEBUG') == '0': assert 'Traceback' not in err and err.count('\n') == 1, err
    else: assert err.startswith('Traceback (most recent call last):') and 'mkdir' in err, err


# Python started with scikit-learn made unimportable, then running the package as `python -m` does.
NO_SKLEARN = """
import runpy, sys
sys.modules['sklearn'] = None   # `import sklearn` now raises ModuleNotFoundError, as where it is not installed
sys.argv = ['fastbook_core', *sys.argv[1:]]
runpy.run_module('fastbook_core', run_name='__main__', alter_sys=True)
"""


def test_missing_sklearn_names_the_extra(tmp_path):
    out = tmp_path / 'out'
    r = run('--epochs', '1', '--out', str(out), cmd=[sys.executable, '-c', NO_SKLEARN])
    line = one_line_error(r, 1)
    assert line.endswith("; the main job needs scikit-learn, for its digits dataset: pip install \"fastbook_core[datasets]\""), line
    assert 'ModuleNotFoundError' in line and r.stdout == ''
    assert not out.exists()  # checked before anything is written


def test_missing_sklearn_still_refuses_bad_flags_with_2():
    "Arguments are checked first: a bad flag is a bad flag, with or without scikit-learn."
    r = run('--epochs', '0', cmd=[sys.executable, '-c', NO_SKLEARN])
    assert '--epochs must be at least 1' in one_line_error(r, 2)


def test_silent_prints_only_the_results(tmp_path):
    "--silent turns the display off: no bars, no table, none of the lr finder's lines; the result lines stay."
    r = run('--epochs', '1', '--device', 'cpu', '--silent', '--out', str(tmp_path / 'out'), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [l.split(':')[0] for l in lines] == ['model', 'plots', 'device', 'time', 'accuracy'], lines
    for quiet in ('LR Finder is complete', 'Min numerical gradient', 'Min loss divided by 10', 'epoch', '\r'):
        assert quiet not in r.stdout, quiet
    loud = run('--epochs', '1', '--device', 'cpu', '--out', str(tmp_path / 'loud'), cwd=tmp_path)
    assert 'Min numerical gradient' in loud.stdout and 'epoch' in loud.stdout  # what --silent takes away
