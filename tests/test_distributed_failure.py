"""A distributed run where one process fails, and one that resumes with TrackEpochCallback: two gloo processes on
loopback, launched like torchrun."""
import json, os, socket, subprocess, sys, textwrap, time
import pytest

WORKER = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import torch
    from fastbook_core.basics import *
    from fastbook_core.callbacks.tracker import SaveModelCallback, TrackEpochCallback
    from fastbook_core.test_utils import synth_classif_data
    import fastbook_core.distributed  # noqa: F401

    mode, out, rank = sys.argv[1], Path(sys.argv[2]), int(os.environ['RANK'])
    set_seed(0)
    learn = Learner(synth_classif_data(n_train=128, n_valid=64, bs=16), torch.nn.Linear(4, 3), path=out / 'lib', silent=True)
    learn.to_distributed(int(os.environ['LOCAL_RANK']))

    class FailOnRank1(Callback):
        def on_epoch_end(self, epoch, **kwargs):
            if rank == 1 and epoch == 0: raise OSError('rank 1 cannot go on')

    if mode == 'fail':
        learn.fit(3, 1e-2, callbacks=[FailOnRank1(), SaveModelCallback(learn, name='best')])
        print(f'rank {rank} finished')  # must not be reached by either process
    else:  # 'resume': two launches, the second goes on after the epoch the first wrote
        track = TrackEpochCallback(learn)
        start = track.start_epoch
        if start: learn.load('last')
        learn.fit(start + 2, 1e-2, callbacks=[track])
        learn.save('last')
        runs = out / f'starts{rank}.json'
        runs.write_text(json.dumps(json.loads(runs.read_text()) + [start] if runs.exists() else [start]))
''')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def launch(tmp_path, mode, timeout):
    worker = tmp_path / 'worker.py'
    worker.write_text(WORKER)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
           f'--master_port={_free_port()}', str(worker), mode, str(tmp_path)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'FASTBOOK_PROGRESS': 'text'}
    try: return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the launch did not end within {timeout} s (a process waits for one that failed?):\n"
                    f"{(e.stderr or b'')[-3000:]!r}")


def test_one_process_failing_ends_the_job(tmp_path):
    # the failed process must not wait at exit for the other (which waits for it in the training loop until gloo's
    # 30-minute timeout): it exits, and torchrun stops the job
    t = time.monotonic()
    r = launch(tmp_path, 'fail', timeout=150)
    assert r.returncode != 0 and 'rank 1 cannot go on' in r.stderr, r.stderr[-3000:]
    assert 'finished' not in r.stdout
    assert time.monotonic() - t < 150


def test_every_process_resumes_at_the_epoch_rank_0_wrote(tmp_path):
    for _ in range(2):
        r = launch(tmp_path, 'resume', timeout=240)
        assert r.returncode == 0, r.stderr[:3000]
    starts = [json.loads((tmp_path / f'starts{i}.json').read_text()) for i in range(2)]
    assert starts == [[0, 2], [0, 2]], starts
    assert (tmp_path / 'lib' / 'models' / 'epoch').read_text() == '3'
