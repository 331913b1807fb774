# After: neptune-ai/neptune-contrib, neptunecontrib/monitoring/fastai.py (Neptune Labs): NeptuneMonitor, a
# LearnerCallback whose constructor takes `learn=None` and calls super().__init__ only when given a learner; it
# reads kwargs['smooth_loss'], kwargs['last_metrics'], kwargs['metrics'] at epoch end and kwargs['last_loss'] at
# batch end, and is passed as `callbacks=[monitor]`.
# Adapted: imports (fastai -> fastbook_core, same path: `from fastai.callbacks import LearnerCallback`); the
# neptune context is a stand-in that keeps what is sent; seeded synthetic data; a short driver. Re-written.
from fastbook_core.callbacks import LearnerCallback
# the driver's own imports (the program itself needs none of these from fastai)
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner
from fastbook_core.metrics import accuracy, error_rate
import fastbook_core.train  # fit_one_cycle


class NeptuneMonitor(LearnerCallback):
    def __init__(self, ctx, learn=None, prefix=''):
        self._ctx = ctx
        self._prefix = prefix
        if learn is not None:
            super().__init__(learn)

    def on_epoch_end(self, **kwargs):
        self._ctx.channel_send(self._prefix + 'train_smooth_loss', float(kwargs['smooth_loss']))
        metric_values = kwargs['last_metrics']
        metric_names = ['valid_last_loss'] + kwargs['metrics']
        for metric_value, metric_name in zip(metric_values, metric_names):
            metric_name = getattr(metric_name, '__name__', metric_name)
            self._ctx.channel_send(self._prefix + metric_name, float(metric_value))

    def on_batch_end(self, **kwargs):
        self._ctx.channel_send('{}last_loss'.format(self._prefix), float(kwargs['last_loss']))


class Context:
    def __init__(self): self.channels = {}
    def channel_send(self, name, value): self.channels.setdefault(name, []).append(value)


torch.manual_seed(0)
x = torch.randn(160, 4); y = (x[:, 0] > 0).long()
data = DataBunch.create(TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:]), bs=16)
learn = Learner(data, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), metrics=[accuracy, error_rate])
ctx = Context()
learn.fit_one_cycle(2, 1e-2, callbacks=[NeptuneMonitor(ctx=ctx)])
learn.fit(1, callbacks=[NeptuneMonitor(ctx=ctx, learn=learn, prefix='second_')])
print({k: len(v) for k, v in ctx.channels.items()})
assert len(ctx.channels['accuracy']) == 2 and len(ctx.channels['error_rate']) == 2
assert len(ctx.channels['last_loss']) >= 16 and 'second_valid_last_loss' in ctx.channels
