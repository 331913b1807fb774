# After: polyaxon/polyaxon, polyaxon_client/tracking/contrib/fastai.py (Polyaxon authors): PolyaxonFastai, a
# TrackerCallback created with Keras' default monitor='val_loss' (a name fastai never records) that logs
# {name: value} built from zip(learn.recorder.names, [epoch, smooth_loss] + last_metrics)[1:] at each epoch end.
# Adapted: imports (fastai -> fastbook_core); the Polyaxon experiment is a stand-in that keeps what is logged;
# seeded synthetic data; a short driver that fits with the callback. Re-written, not copied.
from fastbook_core.callbacks import TrackerCallback
# the driver's own imports (the program itself needs none of these from fastai)
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner
from fastbook_core.metrics import accuracy, error_rate
import fastbook_core.train  # fit_one_cycle


class PolyaxonFastai(TrackerCallback):
    def __init__(self, learn, experiment, monitor='val_loss', mode='auto'):
        super().__init__(learn, monitor=monitor, mode=mode)
        self.experiment = experiment

    def on_epoch_end(self, epoch, smooth_loss, last_metrics, **kwargs):
        metrics = {name: stat for name, stat in
                   list(zip(self.learn.recorder.names, [epoch, smooth_loss] + last_metrics))[1:]}
        self.experiment.log_metrics(**metrics)


class Experiment:
    def __init__(self): self.logged = []
    def log_metrics(self, **metrics): self.logged.append(metrics)


torch.manual_seed(0)
x = torch.randn(200, 5); y = (x.sum(1) > 0).long()
data = DataBunch.create(TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:]), bs=20)
learn = Learner(data, nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 2)), metrics=accuracy)
experiment = Experiment()
learn.fit(2, 1e-2, callbacks=[PolyaxonFastai(learn, experiment)])
print(experiment.logged)
assert len(experiment.logged) == 2 and set(experiment.logged[0]) >= {'train_loss', 'valid_loss', 'accuracy'}
