# After: optuna/optuna, optuna/integration/fastai.py (Optuna contributors): FastAIPruningCallback, a
# TrackerCallback that reports the monitored value to an Optuna trial each epoch and stops a trial that should be
# pruned; used (as its docstring shows) through `callback_fns=[partial(FastAIPruningCallback, trial=trial,
# monitor='valid_loss')]` and through `learn.fit_one_cycle(..., callbacks=[FastAIPruningCallback(learn, trial,
# 'valid_loss')])`; the objective returns `learn.validate()[-1].item()` as optuna's fastai v1 example did.
# Adapted: imports (fastai -> fastbook_core); the Optuna trial and TrialPruned are small stand-ins (no optuna);
# the data are seeded synthetic tensors. Re-written, not copied.
from functools import partial
from fastbook_core.basic_train import Learner
from fastbook_core.callbacks import TrackerCallback
from fastbook_core.basic_data import DataBunch
from fastbook_core.metrics import accuracy
import fastbook_core.train  # optuna's v1 example imported `from fastai import vision`, which imports train (fit_one_cycle)
import torch
from torch import nn
from torch.utils.data import TensorDataset


class TrialPruned(Exception): pass


class Trial:
    "What the callback needs of optuna.trial.Trial: report and should_prune."
    def __init__(self, prune_at=None): self.reports, self.prune_at = {}, prune_at
    def report(self, value, step): self.reports[step] = value
    def should_prune(self): return self.prune_at is not None and max(self.reports) >= self.prune_at


class FastAIPruningCallback(TrackerCallback):
    def __init__(self, learn, trial, monitor):
        super(FastAIPruningCallback, self).__init__(learn, monitor)
        self.trial = trial

    def on_epoch_end(self, epoch, **kwargs):
        value = self.get_monitor_value()
        if value is None:
            return
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise TrialPruned('Trial was pruned at epoch {}.'.format(epoch))


def get_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g); y = (x[:, 0] + x[:, 1] > 0).long()
    return DataBunch.create(TensorDataset(x[:192], y[:192]), TensorDataset(x[192:], y[192:]), bs=32)


def objective(trial):
    data = get_data()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    learn = Learner(data, model, metrics=[accuracy],
                    callback_fns=[partial(FastAIPruningCallback, trial=trial, monitor='valid_loss')])
    learn.fit(2)
    learn.fit_one_cycle(2, 1e-2, callbacks=[FastAIPruningCallback(learn, trial, 'valid_loss')])
    return learn.validate()[-1].item()


trial = Trial()
value = objective(trial)
print('objective', value, 'reports', trial.reports)
assert sorted(trial.reports) == [0, 1], trial.reports

pruned = Trial(prune_at=0)
try:
    objective(pruned)
    raise AssertionError('the trial should have been pruned')
except TrialPruned as e:
    print('pruned:', e)
