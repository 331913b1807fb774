"""Run by test_backup.py under `torchrun --nproc_per_node=2 --max-restarts=N`: a fit with BackupAndRestore whose rank 1
SIGKILLs itself once in the middle of a batch, so that torchrun restarts the group; or the uninterrupted reference.

    python -m torch.distributed.run --nproc_per_node=2 --max-restarts=2 tests/_backup_ddp_worker.py MODE OUT KILL_AT
"""
import os, signal, sys
from pathlib import Path
import torch
from torch import nn
from fastbook_core.basics import *
import fastbook_core.train  # noqa: F401
import fastbook_core.distributed  # noqa: F401
from fastbook_core.test_utils import synth_classif_data
from fastbook_core.callbacks.backup import BackupAndRestore

mode, out, kill_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
rank = int(os.environ['RANK'])
out.mkdir(parents=True, exist_ok=True)


class Kill(Callback):
    "Rank 1 SIGKILLs itself after the backward pass of training batch `kill_at`, the first time only."
    def on_backward_end(self, iteration, **kwargs):
        mark = out / 'killed'
        if rank == 1 and iteration == kill_at and not mark.exists():
            mark.write_text(os.environ.get('TORCHELASTIC_RESTART_COUNT', '?'))
            os.kill(os.getpid(), signal.SIGKILL)


set_seed(0)
data = synth_classif_data(n_train=320, n_valid=96, bs=16)
model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
learn = Learner(data, model, metrics=[accuracy], path=out / 'lib', silent=True)
learn.to_distributed(backend='gloo')
cbs = [BackupAndRestore(learn, save_freq=4), Kill()] if mode == 'backup' else []
learn.fit_one_cycle(3, 1e-2, callbacks=cbs)
r = learn.recorder
torch.save({'weights': {k: v.cpu() for k, v in get_model(learn.model).state_dict().items()},
            'losses': [float(v) for v in r.losses], 'val_losses': [float(v) for v in r.val_losses],
            'restarts': os.environ.get('TORCHELASTIC_RESTART_COUNT')}, out / f'result{rank}.pt')
