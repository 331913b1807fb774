# After: a Kaggle Humpback Whale Identification training script (DenseNet201 + GeM + PCB heads with Ring loss), in the
# public code index (file id 8841031503; the index does not name its repository or author). Its use of fastai v1's
# training core: `Accuracy(Callback)`, a metric with `name` and a filter set over the classes, collecting
# `last_output[-1]` per batch and returning add_metrics(last_metrics, value) (get_device, torch.cat); `@dataclass
# class RingLoss(Callback)` with fields learn: Learner and alpha, whose on_loss_begin keeps the extra outputs and
# returns {'last_output': last_output[0]} and whose on_backward_begin adds the ring penalty to last_loss and returns
# {'last_loss': last_loss} (annotations Tuple, Rank0Tensor, Tensor from the stars); Learner(data, model,
# metrics=[six Accuracy metrics named 'top1acc' ... 'top12acc*'], loss_func=MultiCE, callback_fns=[RingLoss]) on an
# nn.DataParallel model (`learn.model.module`); learn.clip_grad(); learn.split([module.cnn, module.head]);
# torch.load of a learn.save file ({'model': ..., 'opt': ...}), key filtering against module.state_dict(), torch.save
# and learn.load('pretrained-filtered'); rounds of try: learn.load(name) / except: freeze (or unfreeze),
# fit_one_cycle, learn.save(name); data.classes.
# Adapted: imports (fastai -> fastbook_core; `from fastai.vision import *` gave only training-core names here ->
# `from fastbook_core.basics import *`); its own arch/utils/losses modules -> small stand-ins (marked): a conv net
# with K=2 part heads and rings, MultiCE, topkacc, get_device; the image data-block pipeline -> DataBunch.create of
# seeded (3, 24, 48) tensors in 10 classes with `classes`; the pretrained checkpoint -> one written by a first short
# fit; rounds shrunk to one of 1 epoch; the temperature-scaling analysis after training (its own code) dropped.
# nn.DataParallel wraps the model unconditionally (the script ran on several GPUs; on a CPU it calls the module).
# Re-written, not copied.
from fastbook_core.basics import *
from fastbook_core.metrics import accuracy
from fastbook_core.basic_data import *
import pandas as pd
from torch import optim
import re
import torch
from fastbook_core import *
import torch.nn.functional as F
import torch.nn as nn
from collections import OrderedDict
import math
import os

RING_ALPHA = 0.01
RING_HEADS = 2
num_classes = 10


# ---- stand-ins for the script's arch / utils / losses modules (not fastai code) ----
def get_device(): return torch.device('cpu')

def topkacc(preds, targs, k=1, mean=True):
    hit = (preds.topk(k, dim=-1)[1] == targs[:, None]).any(dim=1).float()
    return hit.mean() if mean else hit

def MultiCE(outputs, target):
    return sum(F.cross_entropy(o, target) for o in outputs) / len(outputs)

class PCBRingHead(nn.Module):
    def __init__(self, num_classes, feat, heads, in_ch):
        super().__init__()
        self.local_FE_list = nn.ModuleList([nn.Sequential(nn.Linear(in_ch, feat), nn.ReLU()) for _ in range(heads)])
        self.clf = nn.ModuleList([nn.Linear(feat, num_classes) for _ in range(heads)])
        self.rings = nn.ParameterList([nn.Parameter(torch.ones(1)) for _ in range(heads)])
    def forward(self, x):
        parts = x.chunk(len(self.clf), dim=3)
        feats = [fe(p.mean((2, 3))) for fe, p in zip(self.local_FE_list, parts)]
        logits = [c(f) for c, f in zip(self.clf, feats)]
        return logits + [torch.stack(logits).mean(0)], feats

class CustomPCBNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = PCBRingHead(num_classes, 32, RING_HEADS, 16)
    def forward(self, x):
        return self.head(self.cnn(x))
# ----


class Accuracy(Callback):
    """Wrap a `func` in a callback for metrics computation."""
    def __init__(self, func, name, filter_set=None):
        super().__init__()
        self.func, self.name, self.filter_set = func, name, filter_set

    def on_epoch_begin(self, **kwargs):
        self.values, self.targets = [], []

    def on_batch_end(self, last_output, last_target, **kwargs):
        last_preds = last_output[-1]
        value = self.func(last_preds, last_target)
        self.values.append(value)
        self.targets.append(last_target)

    def on_epoch_end(self, last_metrics, **kwargs):
        values = torch.cat(self.values)
        targets = torch.cat(self.targets)
        if self.filter_set is not None:
            values_filtered = [v for v, t in zip(values.tolist(), targets.tolist()) if t in self.filter_set]
            value = torch.tensor(sum(values_filtered) / max(len(values_filtered), 1)).to(get_device())
        else:
            value = values.mean()
        return add_metrics(last_metrics, value)


@dataclass
class RingLoss(Callback):
    """`Callback` that adds the Ring loss of the part features."""
    learn: Learner
    alpha: float = RING_ALPHA

    def on_loss_begin(self, last_output: Tuple[list, list], **kwargs):
        "Save the extra outputs for later and only returns the true output."
        self.feature_out = last_output[1]
        return {'last_output': last_output[0]}

    def on_backward_begin(self, last_loss: Rank0Tensor, last_input: list, last_target: Tensor, **kwargs):
        x_list = self.feature_out
        ring_list = self.learn.model.module.head.rings
        loss = None
        for cc in range(len(ring_list)):
            x_norm = x_list[cc].pow(2).sum(dim=1).pow(0.5)
            diff = torch.mean(torch.abs(x_norm - ring_list[cc].expand_as(x_norm)) ** 2)
            loss = diff.mean() if loss is None else loss + diff.mean()
        loss = (self.alpha * loss).sum()
        last_loss += loss
        return {'last_loss': last_loss}


# ---- stand-in for the image pipeline (not fastai code) ----
class WhaleLike(torch.utils.data.Dataset):
    classes = [f'w_{i:03d}' for i in range(num_classes)]
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, num_classes, (n,), generator=g)
        self.x = torch.randn(n, 3, 24, 48, generator=g) + (self.y[:, None, None, None].float() - 4.5) * 0.2
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return self.x[i], self.y[i]

os.makedirs('data/models', exist_ok=True)
data = DataBunch.create(WhaleLike(120, 0), WhaleLike(60, 1), bs=20, path='data')
# ----

classes = data.classes
nonzeroton_idx, singleton_idx = set(range(0, num_classes, 2)), set(range(1, num_classes, 3))
network_model = nn.DataParallel(CustomPCBNetwork())

top1acc_func = partial(topkacc, k=1, mean=False)
top5acc_func = partial(topkacc, k=5, mean=False)
top12acc_func = partial(topkacc, k=12 if num_classes >= 12 else num_classes, mean=False)
metrics = [Accuracy(top1acc_func, name='top1acc', filter_set=nonzeroton_idx),
           Accuracy(top5acc_func, name='top5acc', filter_set=nonzeroton_idx),
           Accuracy(top12acc_func, name='top12acc', filter_set=nonzeroton_idx),
           Accuracy(top1acc_func, name='top1acc*', filter_set=singleton_idx),
           Accuracy(top5acc_func, name='top5acc*', filter_set=singleton_idx),
           Accuracy(top12acc_func, name='top12acc*', filter_set=singleton_idx)]

# the "pretrained" checkpoint the script starts from: a first short fit, saved as fastai saves
pre = Learner(data, nn.DataParallel(CustomPCBNetwork()), loss_func=MultiCE, callback_fns=[RingLoss])
pre.fit(1, 1e-3)
pre.save('pretrained')

learn = Learner(data, network_model, metrics=metrics, loss_func=MultiCE, callback_fns=[RingLoss])
learn.clip_grad()
learn.split([learn.model.module.cnn, learn.model.module.head])

pretrained = torch.load('data/models/pretrained.pth')
initialized = learn.model.module.state_dict()
model = pretrained['model']
new_model = OrderedDict()
needle_list = ['cnn', 'head.local_FE_list.0.0.', 'head.local_FE_list.1.0.']
for key in model.keys():
    if any(key.startswith(needle) for needle in needle_list): new_model[key] = model[key]
    else:
        print('Random: %r' % (key,))
        new_model[key] = initialized[key]
pretrained['model'] = new_model
torch.save(pretrained, 'data/models/pretrained-filtered.pth')
learn.load('pretrained-filtered')
assert torch.equal(learn.model.module.cnn[0].weight, pre.model.module.cnn[0].weight)

name = f'SmallNet-PCB{RING_HEADS}-Ring-{RING_ALPHA}'
for round_num, (max_lr_, num_epochs_) in enumerate([(1e-3, 1)]):
    print("Round %d training (freeze)" % (round_num + 1,))
    name_ = '%s-R%s-freeze' % (name, round_num)
    try:
        learn.load(name_)
    except:
        learn.freeze()
        learn.fit_one_cycle(num_epochs_, max_lr_)
        learn.save(name_)
    print("Round %d training (unfreeze)" % (round_num + 1,))
    name_ = '%s-R%s-unfreeze' % (name, round_num)
    try:
        learn.load(name_)
    except:
        learn.unfreeze()
        learn.fit_one_cycle(num_epochs_, max_lr_)
        learn.save(name_)

print("Saving final models")
learn.save(name)
assert learn.recorder.names[3:9] == ['top1acc', 'top5acc', 'top12acc', 'top1acc*', 'top5acc*', 'top12acc*']
assert len(classes) == num_classes and len(learn.layer_groups) == 2
assert os.path.isfile(f'data/models/{name}.pth')
print('done')
