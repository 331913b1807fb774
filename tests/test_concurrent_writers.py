"""Two writers of one file at the same time (two processes of a distributed run, two notebooks saving one name): each
write lands whole, and neither removes the other's temporary file; only a killed writer's is cleaned up."""
import os, subprocess, sys, textwrap, time
import pytest
from fastbook_core.torch_core import _writer_tag, atomic_write, remove_stale_temps

HAMMER = textwrap.dedent('''
    import sys
    from fastbook_core.torch_core import atomic_write
    target, me = sys.argv[1], sys.argv[2]
    for i in range(300):
        with atomic_write(target, 'w') as f: f.write(f'{me} {i}\\n' * 50)
''')


def test_two_processes_writing_one_file(tmp_path):
    target = tmp_path / 'epoch'
    procs = [subprocess.Popen([sys.executable, '-c', HAMMER, str(target), me], stderr=subprocess.PIPE, text=True)
             for me in 'ab']
    errs = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs  # a rename whose temporary file the other writer removed fails
    lines = target.read_text().splitlines()
    assert len(lines) == 50 and len(set(lines)) == 1 and lines[0].split()[1] == '299'  # one writer's last write, whole
    assert not list(tmp_path.glob('.*.tmp'))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, '-c', 'pass']); p.wait()
    return p.pid


@pytest.mark.skipif(os.name == 'nt', reason='on Windows a writer is only known gone by the age of its file')
def test_which_temporary_files_are_stale(tmp_path):
    host = _writer_tag().split('-')[1]
    dead, other_host = _dead_pid(), 'deadbeef' if host != 'deadbeef' else 'feedface'
    files = {
        f'.ck.pth.{os.getpid()}-{host}.abcd1234.tmp': True,   # a writer at work (this process): kept
        f'.ck.pth.{dead}-{host}.abcd1234.tmp': False,         # killed: removed
        f'.ck.pth.{dead}-{other_host}.abcd1234.tmp': True,    # another machine's (a shared disk): cannot tell, kept
        '.ck.pth.abcd1234.tmp': False,                        # an older release's, untagged: removed, as then
        f'.ck.pth.x.{dead}-{host}.abcd1234.tmp': True,        # the temporary file of another target, ck.pth.x: not ours
        'ck.pth.tmp': True,                                   # not a temporary file of ours at all
    }
    for name in files: (tmp_path / name).write_text('x')
    old = tmp_path / f'.ck.pth.{os.getpid() + 10**6}-{other_host}.abcd1234.tmp'
    old.write_text('x'); os.utime(old, (time.time() - 2 * 86400,) * 2)  # two days old: its writer is gone, wherever it ran
    remove_stale_temps(tmp_path, 'ck.pth')
    assert {n: (tmp_path / n).exists() for n in files} == files
    assert not old.exists()


def test_a_killed_writers_file_goes_with_the_next_write(tmp_path):
    killer = textwrap.dedent('''
        import os, signal, sys
        from fastbook_core.torch_core import atomic_write
        with atomic_write(sys.argv[1]) as f:
            f.write(b'half'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)
    ''')
    r = subprocess.run([sys.executable, '-c', killer, str(tmp_path / 'w.pth')])
    assert r.returncode != 0 and len(list(tmp_path.glob('.w.pth.*.tmp'))) == 1
    with atomic_write(tmp_path / 'w.pth') as f: f.write(b'whole')
    assert (tmp_path / 'w.pth').read_bytes() == b'whole' and not list(tmp_path.glob('.*.tmp'))
