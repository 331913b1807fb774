# After: wandb/wandb, wandb/fastai/__init__.py (Weights & Biases): WandbCallback, a TrackerCallback (default
# monitor='val_loss', Keras' name) that calls super().on_train_begin() without arguments, saves the best model
# with learn.save(<open binary file>) and reloads it with learn.load(<open file>, purge=False), and logs
# zip(learn.recorder.names, [epoch, smooth_loss] + last_metrics)[1:]; passed as callback_fns=WandbCallback (a
# bare class, as wandb's functional_tests/fastai/01-v1.py does) or callback_fns=partial(WandbCallback, ...).
# Adapted: imports (fastai -> fastbook_core); `wandb` is a stand-in object (run.dir, watch, log); seeded
# synthetic data; a short driver. Re-written, not copied.
import tempfile
from functools import partial
from pathlib import Path
from types import SimpleNamespace
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from fastbook_core.callbacks import TrackerCallback
# the driver's own imports (the program itself needs none of these from fastai)
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner
from fastbook_core.metrics import accuracy, error_rate
import fastbook_core.train  # fit_one_cycle

logged = []
wandb = SimpleNamespace(run=SimpleNamespace(dir=tempfile.mkdtemp()), watch=lambda model, log=None: None,
                        log=lambda d, commit=True: logged.append(d))


class WandbCallback(TrackerCallback):
    watch_called = False

    def __init__(self, learn, log=None, show_results=False, save_model=False, monitor='val_loss', mode='auto'):
        if wandb.run is None:
            raise ValueError('You must call wandb.init() before WandbCallback()')
        super().__init__(learn, monitor=monitor, mode=mode)
        self.save_model = save_model
        self.model_path = Path(wandb.run.dir) / 'bestmodel.pth'
        self.log = log
        self.show_results = show_results
        self.best = None

    def on_train_begin(self, **kwargs):
        super().on_train_begin()
        if not WandbCallback.watch_called:
            WandbCallback.watch_called = True
            wandb.watch(self.learn.model, log=self.log)

    def on_epoch_end(self, epoch, smooth_loss, last_metrics, **kwargs):
        if self.save_model:
            current = self.get_monitor_value()
            if current is not None and self.operator(current, self.best):
                print('Better model found at epoch {} with {} value: {}.'.format(epoch, self.monitor, current))
                self.best = current
                with self.model_path.open('wb') as model_file:
                    self.learn.save(model_file)
        if self.show_results:
            self.learn.show_results()
            wandb.log({"Prediction Samples": plt}, commit=False)
        logs = {name: stat for name, stat in
                list(zip(self.learn.recorder.names, [epoch, smooth_loss] + last_metrics))[1:]}
        wandb.log(logs)
        if self.show_results:
            plt.close('all')

    def on_train_end(self, **kwargs):
        if self.save_model:
            if self.model_path.is_file():
                with self.model_path.open('rb') as model_file:
                    self.learn.load(model_file, purge=False)
                    print('Loaded best saved model from {}'.format(self.model_path))


torch.manual_seed(0)
x = torch.randn(200, 6); y = (x[:, :3].sum(1) > 0).long()
data = DataBunch.create(TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:]), bs=20)
def model(): return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 2))

learn = Learner(data, model(), metrics=accuracy, callback_fns=WandbCallback)
learn.fit(2)
learn = Learner(data, model(), metrics=accuracy, path=wandb.run.dir,
                callback_fns=partial(WandbCallback, save_model=True, monitor='valid_loss'))
learn.fit(2)
print(logged)
assert len(logged) == 4 and 'valid_loss' in logged[-1]
assert (Path(wandb.run.dir) / 'bestmodel.pth').is_file()
