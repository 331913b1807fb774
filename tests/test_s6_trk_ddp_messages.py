"""The trackers' messages in a real distributed run (two gloo processes on loopback, launched like torchrun): an
interrupted fit's warning, a NaN monitor's warning and TrackEpochCallback's line come from rank 0 only."""
import json, os, socket, subprocess, sys, textwrap
import pytest

WORKER = textwrap.dedent('''
    import json, os, sys, warnings
    from pathlib import Path
    import torch
    from fastbook_core.basics import *
    from fastbook_core.callbacks.tracker import EarlyStoppingCallback, SaveModelCallback, TrackEpochCallback
    from fastbook_core.test_utils import synth_classif_data
    import fastbook_core.distributed  # noqa: F401

    out, rank = Path(sys.argv[1]), int(os.environ['RANK'])
    set_seed(0)
    learn = Learner(synth_classif_data(n_train=128, n_valid=64, bs=16), torch.nn.Linear(4, 3), path=out / 'lib', silent=True)
    learn.to_distributed(int(os.environ['LOCAL_RANK']))

    class Interrupt(Callback):
        def on_epoch_begin(self, epoch, **kwargs):
            if epoch == 2: raise RuntimeError('interrupted')

    plain = learn.loss_func
    said = {}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        try: learn.fit(4, 1e-2, callbacks=[SaveModelCallback(learn, name='best'), TrackEpochCallback(learn), Interrupt()])
        except RuntimeError: pass
        said['interrupted'] = sum('The fit was interrupted' in str(x.message) for x in w)
    learn.loss_func = lambda o, y: plain(o, y) * (1. if torch.is_grad_enabled() else float('nan'))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn.fit(1, 1e-2, callbacks=[EarlyStoppingCallback(learn, patience=3)])
        said['nan'] = sum('valid_loss is NaN at epoch 0' in str(x.message) for x in w)
    (out / f'said{rank}.json').write_text(json.dumps(said))
''')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_only_rank_0_says_it(tmp_path):
    worker = tmp_path / 'worker.py'
    worker.write_text(WORKER)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
           f'--master_port={_free_port()}', str(worker), str(tmp_path)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'FASTBOOK_PROGRESS': 'text'}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    said = [json.loads((tmp_path / f'said{i}.json').read_text()) for i in range(2)]
    assert said == [{'interrupted': 1, 'nan': 1}, {'interrupted': 0, 'nan': 0}], said
    assert r.stdout.count('TrackEpochCallback: no ') == 1, r.stdout  # one line, from rank 0
