# requires: sklearn
# After: ajdajd/apes_together_strong_, tests/utils/metrics_utils.py (ajdajd): AUROC, a plain Callback with
# `__init__(self, learn, **kwargs)` used in callback_fns, `_order = -20` so it runs before the Recorder, that calls
# self.learn.recorder.add_metric_names(['AUROC']) at train begin, collects last_output/last_target of the
# validation batches and returns add_metrics(last_metrics, [metric]) at epoch end; auroc_score uses scikit-learn's
# roc_auc_score on softmax probabilities.
# Adapted: imports (its `from fastai import *` / `from fastai.tabular import *` gave the training core's names;
# they become `from fastbook_core import *` / `from fastbook_core.basics import *`; roc_auc_score, which came
# with the tabular star import, is imported from scikit-learn); seeded synthetic data; a short driver.
# Re-written, not copied.
from fastbook_core import *
from fastbook_core.basics import *
from sklearn.metrics import roc_auc_score

def auroc_score(input, target):
    input, target = input.cpu().numpy()[:,1], target.cpu().numpy()
    return roc_auc_score(target, input)

class AUROC(Callback):
    _order = -20

    def __init__(self, learn, **kwargs): self.learn = learn
    def on_train_begin(self, **kwargs): self.learn.recorder.add_metric_names(['AUROC'])
    def on_epoch_begin(self, **kwargs): self.output, self.target = [], []

    def on_batch_end(self, last_target, last_output, train, **kwargs):
        if not train:
            self.output.append(last_output)
            self.target.append(last_target)

    def on_epoch_end(self, last_metrics, **kwargs):
        if len(self.output) > 0:
            output = torch.cat(self.output)
            target = torch.cat(self.target)
            preds = F.softmax(output, dim=1)
            metric = auroc_score(preds, target)
            return add_metrics(last_metrics, [metric])


import torch as _torch
from torch import nn as _nn
from torch.utils.data import TensorDataset as _TD
_torch.manual_seed(0)
x = _torch.randn(300, 7); y = (x[:, 0] + 0.5 * _torch.randn(300) > 0).long()
data = DataBunch.create(_TD(x[:240], y[:240]), _TD(x[240:], y[240:]), bs=30)
learn = Learner(data, _nn.Sequential(_nn.Linear(7, 16), _nn.ReLU(), _nn.Linear(16, 2)), metrics=[accuracy],
                callback_fns=[AUROC])
learn.fit_one_cycle(2, 1e-2)
print(learn.recorder.metrics_names, learn.recorder.metrics)
assert learn.recorder.metrics_names[-1] == 'AUROC' and len(learn.recorder.metrics[-1]) == 2
assert 0.5 < float(learn.recorder.metrics[-1][-1]) <= 1
