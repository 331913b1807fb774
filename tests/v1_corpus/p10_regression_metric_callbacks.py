# requires: scipy
# After: a fastai v1 program in the public code index (file id 34108087048; the index does not name its
# repository): metric callbacks RMSE_Reg / Pr_Reg (subclasses of a `Regression(Callback)` that accumulates
# last_output and last_target[1] over groups of ten validation batches and returns add_metrics(last_metrics, ...)),
# annotations with `Rank0Tensor`, and a loss `mean_squared_error_mine(pred, *targs)` on the second of two targets
# (the dataset gives (x, (y0, y1)), so v1's loss_batch calls loss_func(out, y0, y1)).
# Adapted: imports (fastai -> fastbook_core; `from fastai.layers import *` is not part of the training core and
# is left out: the program uses none of its names); seeded synthetic data with two targets; a short driver with
# the callbacks as metrics. Re-written, not copied.
from fastbook_core.torch_core import *
from fastbook_core.callback import *
from fastbook_core.basic_train import LearnerCallback
import torch.nn.functional as F
import torch
from scipy import stats

def root_mean_squared_error(pred:Tensor, targ:Tensor)->Rank0Tensor:
    pred,targ = pred.contiguous().view(-1),targ.contiguous().view(-1)
    return torch.sqrt(F.mse_loss(pred, targ))

def pearson_r(pred, targ):
    pred,targ = pred.contiguous().view(-1),targ.contiguous().view(-1)
    return stats.pearsonr(pred,targ)[0]

class Regression(Callback):
    def on_epoch_begin(self, **kwargs):
        self.targs, self.preds = Tensor([]), Tensor([])
        self.rmse = 0.0
        self.pr = 0.0
        self.batch_iter = 0
        self.batch_num = 0.0
        self.metrics_size = 10

    def on_batch_end(self, last_output, last_target, **kwargs):
        self.batch_iter += 1
        self.preds = torch.cat((self.preds, last_output.cpu()))
        self.targs = torch.cat((self.targs, last_target[1].cpu()))
        if self.batch_iter == self.metrics_size:
            self.rmse += root_mean_squared_error(self.preds, self.targs)
            self.targs, self.preds = Tensor([]), Tensor([])
            self.batch_iter = 0
            self.batch_num += 1

class RMSE_Reg(Regression):
    def on_epoch_end(self, last_metrics, **kwargs):
        if self.batch_iter != 0:
            self.rmse += root_mean_squared_error(self.preds, self.targs)
            self.targs, self.preds = Tensor([]), Tensor([])
            self.batch_iter = 0
            self.batch_num += 1
        return add_metrics(last_metrics, 1-self.rmse/self.batch_num)

class Pr_Reg(Regression):
    def on_epoch_end(self, last_metrics, **kwargs):
        if self.batch_iter != 0:
            self.pr += pearson_r(self.preds, self.targs)
            self.targs, self.preds = Tensor([]), Tensor([])
            self.batch_iter = 0
            self.batch_num += 1
        return add_metrics(last_metrics, self.pr/self.batch_num)

def mean_squared_error_mine(pred, *targs)->Rank0Tensor:
    targ = targs[1]
    pred, targ = pred.contiguous().view(-1),targ.contiguous().view(-1)
    return F.mse_loss(pred, targ)


from torch import nn as _nn
from torch.utils.data import Dataset as _Dataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner

class TwoTargets(_Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g); self.y1 = self.x[:, :2].sum(1, keepdim=True)
        self.y0 = (self.y1 > 0).float()
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], (self.y0[i], self.y1[i])

data = DataBunch.create(TwoTargets(256, 0), TwoTargets(128, 1), bs=8)
learn = Learner(data, _nn.Sequential(_nn.Linear(6, 12), _nn.ReLU(), _nn.Linear(12, 1)),
                loss_func=mean_squared_error_mine, metrics=[RMSE_Reg(), Pr_Reg()])
learn.fit(2, 1e-2)
print(learn.recorder.metrics_names, learn.recorder.metrics)
assert learn.recorder.metrics_names == ['rmse__reg', 'pr__reg'] and len(learn.recorder.metrics) == 2
