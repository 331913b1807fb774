# After: a Jigsaw Unintended Bias in Toxicity Classification (Kaggle 2019) callbacks module, in the public code index
# (file id 48213131927; the index does not name its repository or author): `from fastai.torch_core import Tensor`,
# `from fastai.callbacks import TrackerCallback`, `from fastai.callback import Callback, add_metrics` (v1's callback
# module had add_metrics in its namespace, from torch_core); JigsawMetric, a Callback metric given its evaluator by
# `fm.set_eval(evaluator)`, that collects `list(last_output[:, 0])` per batch and returns
# add_metrics(last_metrics, evaluator.get_final_metric(np.array(predictions))); SWA(TrackerCallback), built as
# SWA(learn) (TrackerCallback's defaults), keeping a running average of the weights in a deepcopy of learn.model at
# each epoch end. Its docstring's use: Learner(databunch, model, loss_func=custom_loss, metrics=[fm]).
# Adapted: imports (fastai -> fastbook_core); the competition's Evaluator (subgroup AUCs) -> a stand-in with
# get_final_metric (plain AUC, marked); the LSTM on word embeddings -> a small MLP on seeded features with the
# kernels' usual 1 + 6 outputs (target + auxiliary targets) and custom_loss (weighted BCE on the target, BCE on the
# auxiliary ones); 3 epochs. Re-written, not copied.
import copy
import numpy as np
import torch
from fastbook_core.torch_core import Tensor
from fastbook_core.callbacks import TrackerCallback
from fastbook_core.callback import Callback, add_metrics


class JigsawMetric(Callback):
    "The competition metric over the epoch's predictions; give it an evaluator with set_eval first."
    def set_eval(self, evaluator):
        self.evaluator = evaluator

    def on_epoch_begin(self, **kwargs):
        self.predictions = []
        self.correct, self.total = 0., 0.

    def on_batch_end(self, last_output, last_target, **kwargs):
        preds = list(last_output[:, 0])
        self.predictions += preds

    def on_epoch_end(self, last_metrics, **kwargs):
        self.predictions = np.array(self.predictions)
        metric = self.evaluator.get_final_metric(self.predictions)
        self.predictions = []
        return add_metrics(last_metrics, metric)


class SWA(TrackerCallback):
    def __init__(self, learn):
        super().__init__(learn)
        self.model = learn.model
        self.swa_model = copy.deepcopy(learn.model)
        self.swa_n = 1

    def on_epoch_end(self, **kwargs):
        self.update_average_model()

    def update_average_model(self):
        for model_param, swa_param in zip(self.model.parameters(), self.swa_model.parameters()):
            swa_param.data *= self.swa_n
            swa_param.data += model_param.data
            swa_param.data /= (self.swa_n + 1)
        self.swa_n += 1


# ---- driver (marked): the docstring's use on small seeded data ----
import tempfile
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner

class Evaluator:
    "Stand-in for the competition's evaluator: AUC of the main target."
    def __init__(self, y_true): self.y_true = y_true
    def get_final_metric(self, y_pred):
        pos, neg = y_pred[self.y_true > .5], y_pred[self.y_true <= .5]
        return float((pos[:, None] > neg[None, :]).mean())

torch.manual_seed(0)
n, loss_weight = 400, 3.0
x = torch.randn(n, 20)
target = (x[:, 0] + 0.5 * torch.randn(n) > 0).float()
weights = 1 + (x[:, 1] > 1).float()
aux = torch.sigmoid(x[:, 2:8] + target[:, None])
y = torch.cat([target[:, None], weights[:, None], aux], 1)  # target, its weight, 6 auxiliary targets
train, valid = TensorDataset(x[:320], y[:320]), TensorDataset(x[320:], y[320:])

def custom_loss(data, targets):
    bce_loss_1 = nn.BCEWithLogitsLoss(weight=targets[:, 1:2])(data[:, :1], targets[:, :1])
    bce_loss_2 = nn.BCEWithLogitsLoss()(data[:, 1:], targets[:, 2:])
    return (bce_loss_1 * loss_weight) + bce_loss_2

databunch = DataBunch.create(train, valid, bs=32, path=tempfile.mkdtemp())
model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 7))
fm = JigsawMetric()
fm.set_eval(Evaluator(y_true=y[320:, 0].numpy()))
learn = Learner(databunch, model, loss_func=custom_loss, metrics=[fm])
swa = SWA(learn)
learn.fit(3, 3e-3, callbacks=[swa])

assert learn.recorder.names[3] == 'jigsaw_metric', learn.recorder.names
auc = float(learn.recorder.metrics[-1][0])
assert 0.6 < auc <= 1, auc
assert swa.swa_n == 4 and not torch.equal(swa.swa_model[0].weight, learn.model[0].weight)
print('done')
