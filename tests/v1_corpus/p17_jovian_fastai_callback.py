# After: JovianHQ/jovian-py, jovian/callbacks/fastai.py (Jovian, 2019): JovianFastaiCallback, a plain Callback that
# keeps `learn` itself (no LearnerCallback), tests for a validation set with `learn.data.valid_dl.items.any()`
# (v1's loaders hand unknown attributes down to the dataset, a LabelList with `items`), logs hyperparameters at
# on_train_begin(n_epochs, metrics_names) from learn.data.batch_size, str(learn.loss_func.func) (v1's
# CrossEntropyFlat is a FlattenedLoss with `.func`), str(learn.opt_func.func).split("'")[1] (v1's default opt_func
# is a partial of torch.optim.Adam), learn.wd and str(learn.opt.lr), then logs metrics at
# on_epoch_end(epoch, smooth_loss, last_metrics) as smooth_loss.item(), str(last_metrics[0]) and .item() of each
# metric. Its docs: `jvn_cb = JovianFastaiCallback(learn, 'res18'); learn.fit_one_cycle(5, callbacks = jvn_cb)`
# (one callback, not a list), learn from cnn_learner.
# Adapted: imports (fastai -> fastbook_core); jovian's log_hyperparams / log_metrics / log -> small recorders
# (marked); cnn_learner on an ImageDataBunch -> Learner(data, simple_cnn(...), metrics=accuracy) on a Dataset shaped
# like v1's LabelList (items, y.c, y.loss_func = CrossEntropyFlat(), as v1's CategoryList), seeded (3, 16, 16)
# images in 2 classes; 2 epochs. Re-written, not copied.
from torch import Tensor
from fastbook_core.basic_train import Learner
from fastbook_core.callback import Callback

# ---- stand-ins for jovian.utils.records / jovian.utils.logger (not fastai code) ----
LOGGED = {'hyperparams': [], 'metrics': [], 'messages': []}
def log_hyperparams(d): LOGGED['hyperparams'].append(d)
def log_metrics(d): LOGGED['metrics'].append(d)
def log(msg): LOGGED['messages'].append(msg)
# ----


class JovianFastaiCallback(Callback):
    "Log hyperparameters and metrics of a fastai fit."
    def __init__(self, learn: Learner, arch_name: str):
        self.learn = learn
        self.arch_name = arch_name
        self.met_names = ['epoch', 'train_loss']
        self.valid_set = self.learn.data.valid_dl.items.any()
        if self.valid_set: self.met_names.append('valid_loss')

    def on_train_begin(self, n_epochs: int, metrics_names: list, **ka):
        hyp_dict = {
            'arch_name': self.arch_name,
            'epochs': n_epochs,
            'batch_size': self.learn.data.batch_size,
            'loss_func': str(self.learn.loss_func.func),
            'opt_func': str(self.learn.opt_func.func).split("'")[1],
            'weight_decay': self.learn.wd,
            'learning_rate': str(self.learn.opt.lr),
        }
        log_hyperparams(hyp_dict)
        if self.valid_set: self.met_names.extend(metrics_names)

    def on_epoch_end(self, epoch: int, smooth_loss: Tensor, last_metrics: list, **ka):
        met_values = [epoch, smooth_loss.item()]
        if self.valid_set:
            met_values.extend([str(last_metrics[0])] + [i.item() for i in last_metrics[1:]])
        log_metrics(dict(zip(self.met_names, met_values)))

    def on_train_end(self, **ka):
        if not self.valid_set:
            log('Metrics apart from train_loss are not calculated in fastai without a validation dataset')


# ---- driver (marked): the callback's documented use, on data shaped like v1's LabelList ----
import numpy as np, torch
from torch.utils.data import Dataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.layers import CrossEntropyFlat, simple_cnn
from fastbook_core.metrics import accuracy
import fastbook_core.train  # fit_one_cycle, as cnn_learner's `from fastai.vision import *` brought it

class Labels:
    "The `y` of a v1 LabelList: its classes and the loss v1's CategoryList gave."
    def __init__(self, codes): self.items, self.c, self.loss_func = codes, 2, CrossEntropyFlat()

class ImageLikeList(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = Labels(torch.randint(0, 2, (n,), generator=g))
        self.x = torch.randn(n, 3, 16, 16, generator=g) + self.y.items[:, None, None, None].float()
        self.items = np.array([f'img_{seed}_{i}.png' for i in range(n)], dtype=object)
        self.c = 2
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.y.items[i]

import tempfile
data = DataBunch.create(ImageLikeList(128, 0), ImageLikeList(64, 1), bs=32, path=tempfile.mkdtemp())
learn = Learner(data, simple_cnn((3, 16, 16, 2)), metrics=accuracy)
jvn_cb = JovianFastaiCallback(learn, 'res18')
learn.fit_one_cycle(2, callbacks=jvn_cb)

hp = LOGGED['hyperparams'][0]
print(hp)
assert hp['epochs'] == 2 and hp['batch_size'] == 32 and hp['opt_func'] == 'torch.optim.adam.Adam', hp
assert 'CrossEntropyLoss' in hp['loss_func'] and hp['weight_decay'] == 1e-2, hp
assert [list(m) for m in LOGGED['metrics']] == [['epoch', 'train_loss', 'valid_loss', 'accuracy']] * 2, LOGGED
assert all(isinstance(m['accuracy'], float) for m in LOGGED['metrics'])
print('done')
