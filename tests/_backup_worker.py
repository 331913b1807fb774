"""Run by test_backup.py (and like the notebook's script): one fit with BackupAndRestore that kills itself where told.

    python tests/_backup_worker.py OUT '{"save_freq": 4, "kill_at": [7, 23]}'

Settings (JSON): save_freq ('epoch' or N), backup (false: no BackupAndRestore, the uninterrupted reference), epochs,
data ('tensor': whole-batch TensorDataset; 'items': a dataset that draws random noise per item, fetched item by item),
generator (shuffle with a seeded torch.Generator), kill_at (iterations at whose on_backward_end the process SIGKILLs
itself, each once: a marker file in OUT remembers it), kill_in_write (numbers of backup writes, counted over all the
runs, between whose temporary file and rename the process SIGKILLs itself), term_at (an iteration after which it
sends itself SIGTERM), tracker (add a SaveModelCallback), track_epoch (add a TrackEpochCallback), kill_at_epoch_end
(epochs at whose end the process SIGKILLs itself, each once, after TrackEpochCallback has written its file and before
the backup is written), schedule ('general': `fit` with a GeneralScheduler of three phases, not `fit_one_cycle`). The final weights and the Recorder's lists go to OUT/result.pt.
"""
import json, os, signal, sys
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import Dataset
from fastbook_core.basics import *
import fastbook_core.train  # noqa: F401  (fit_one_cycle)
from fastbook_core.basic_train import to_floats
from fastbook_core.callbacks.tracker import SaveModelCallback, TrackEpochCallback
from fastbook_core.callbacks.general_sched import GeneralScheduler, TrainingPhase
from fastbook_core.callback import annealing_cos, annealing_linear
from fastbook_core.callbacks.backup import BackupAndRestore

out, cfg = Path(sys.argv[1]), json.loads(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)


def once(name: str) -> bool:
    "True the first time `name` is asked for, over every run of this worker in OUT."
    marker = out / f'.{name}'
    if marker.exists(): return False
    marker.write_text('done'); return True


class Noisy(Dataset):
    "Items of a fixed set plus noise drawn from torch's generator when fetched: the fetch itself uses random states."
    def __init__(self, x, y): self.x, self.y = x, y
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i] + 0.1 * torch.randn(self.x.shape[1:]), self.y[i]


class Killer(Callback):
    "SIGKILL this process in the middle of the batches `kill_at` (after the backward pass, before the step); SIGTERM after `term_at`."
    def on_backward_end(self, iteration, **kwargs):
        if iteration in cfg.get('kill_at', []) and once(f'kill{iteration}'): os.kill(os.getpid(), signal.SIGKILL)
    def on_batch_end(self, iteration, train, **kwargs):
        if train and iteration == cfg.get('term_at') and once(f'term{iteration}'): os.kill(os.getpid(), signal.SIGTERM)
    def on_epoch_end(self, epoch, **kwargs):  # _order 0: after TrackEpochCallback (-20), before BackupAndRestore
        if epoch in cfg.get('kill_at_epoch_end', []) and once(f'end{epoch}'): os.kill(os.getpid(), signal.SIGKILL)


if cfg.get('kill_in_write'):
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == 'backup.pth':
            n = len(list(out.glob('.write*'))) + 1
            (out / f'.write{n}').write_text('')
            if n in cfg['kill_in_write']: os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written and synced
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace

set_seed(0)
g = torch.Generator().manual_seed(1)
x = torch.randn(200, 6, generator=g)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
kw = {'generator': torch.Generator().manual_seed(2)} if cfg.get('generator') else {}
if cfg.get('data', 'tensor') == 'items':
    data = DataBunch.create(Noisy(x[:160], y[:160]), Noisy(x[160:], y[160:]), bs=16, device='cpu', **kw)
else:
    from torch.utils.data import TensorDataset
    data = DataBunch.create(TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:]), bs=16, device='cpu', **kw)
model = nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
learn = Learner(data, model, metrics=[accuracy], path=out, silent=cfg.get('silent', False))
cbs = [Killer()]
if cfg.get('backup', True): cbs.append(BackupAndRestore(learn, save_freq=cfg.get('save_freq', 'epoch')))
if cfg.get('tracker'): cbs.append(SaveModelCallback(learn, every='epoch', name='ep'))
if cfg.get('track_epoch'): cbs.append(TrackEpochCallback(learn))
if cfg.get('schedule') == 'general':  # three phases of 7, 9 and 14 batches: phases end inside epochs
    phases = [TrainingPhase(7).schedule_hp('lr', (1e-3, 1e-2), annealing_linear).schedule_hp('mom', (0.95, 0.85)),
              TrainingPhase(9).schedule_hp('lr', 1e-2),
              TrainingPhase(14).schedule_hp('lr', (1e-2, 1e-4), annealing_cos).schedule_hp('mom', (0.85, 0.95))]
    learn.fit(cfg.get('epochs', 3), 1e-2, callbacks=cbs + [GeneralScheduler(learn, phases)])
else: learn.fit_one_cycle(cfg.get('epochs', 3), 1e-2, callbacks=cbs)
r = learn.recorder
torch.save({'weights': learn.model.state_dict(), 'losses': to_floats(r.losses), 'lrs': to_floats(r.lrs),
            'moms': to_floats(r.moms), 'val_losses': to_floats(r.val_losses),
            'metrics': [to_floats(m) for m in r.metrics], 'nb_batches': list(r.nb_batches),
            'rows': [row[:-1] for row in r.rows]}, out / 'result.pt')
