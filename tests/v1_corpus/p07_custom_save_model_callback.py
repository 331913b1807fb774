# After: BradleyBrown19/CustomObjectDetector, efficientdet/callbacks.py (Bradley Brown): CustomSaveModelCallback,
# a TrackerCallback that uses `warn` and `Any` from the star imports, self.operator / self.best /
# self.get_monitor_value(), learn.save(name) and learn.load(name, purge=False), and flags an attribute on the model
# around the save (learn.model.inference).
# Adapted: imports (fastai -> fastbook_core; its `from fastai.vision import *` gave only training-core names here,
# so it becomes `from fastbook_core.basics import *`); seeded synthetic data and a small model in place of
# EfficientDet; a short driver. Re-written, not copied.
import fastbook_core
from fastbook_core.basic_data import DataBunch, Dataset
from fastbook_core import *
from fastbook_core.basics import *
from fastbook_core.basic_train import Learner
from fastbook_core.callbacks import *


class CustomSaveModelCallback(TrackerCallback):
    "A `TrackerCallback` that saves the model when monitored quantity is best."
    def __init__(self, learn:Learner, monitor:str='valid_loss', mode:str='auto', every:str='improvement', name:str='bestmodel'):
        super().__init__(learn, monitor=monitor, mode=mode)
        self.every,self.name = every,name
        if self.every not in ['improvement', 'epoch']:
            warn(f'SaveModel every {self.every} is invalid, falling back to "improvement".')
            self.every = 'improvement'

    def jump_to_epoch(self, epoch:int)->None:
        try:
            self.learn.load(f'{self.name}_{epoch-1}', purge=False)
            print(f"Loaded {self.name}_{epoch-1}")
        except: print(f'Model {self.name}_{epoch-1} not found.')

    def on_epoch_end(self, epoch:int, **kwargs:Any)->None:
        if self.every=="epoch": self.learn.save(f'{self.name}_{epoch}')
        else:
            current = self.get_monitor_value()
            if current is not None and self.operator(current, self.best):
                print(f'Better model found at epoch {epoch} with {self.monitor} value: {current}.')
                self.best = current
                self.learn.model.inference = True
                self.learn.save(f'{self.name}')
                self.learn.model.inference = False

    def on_train_end(self, **kwargs):
        if self.every=="improvement":
            self.learn.load(f'{self.name}', purge=False)


import torch.nn
class Detector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inference = False
        self.body = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    def forward(self, x): return self.body(x)


import tempfile, warnings
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.metrics import accuracy
torch.manual_seed(0)
x = torch.randn(240, 10); y = torch.randint(0, 3, (240,))
data = DataBunch.create(TensorDataset(x[:200], y[:200]), TensorDataset(x[200:], y[200:]), bs=20,
                        path=tempfile.mkdtemp())
learn = Learner(data, Detector(), metrics=accuracy)
learn.fit_one_cycle(3, 1e-2, callbacks=[CustomSaveModelCallback(learn, monitor='valid_loss', name='best')])
assert (learn.path/learn.model_dir/'best.pth').is_file()
cb = CustomSaveModelCallback(learn, every='epoch', name='ep')
learn.fit(2, 1e-3, callbacks=[cb])
cb.jump_to_epoch(2)
cb.jump_to_epoch(9)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    bad = CustomSaveModelCallback(learn, every='sometimes')
assert bad.every == 'improvement' and any('invalid' in str(x.message) for x in w)
print('done')
