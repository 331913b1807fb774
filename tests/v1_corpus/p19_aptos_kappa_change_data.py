# After: a Kaggle kernel for APTOS 2019 Blindness Detection, "Blindness Detection: EfficientNet B3" (ordinal
# regression with label smoothing), in the public code index (file id 5691001577; the index does not name its
# repository or author). It uses fastai v1's training core on its own model and loss: `from fastai import *`,
# `from fastai.vision import *`, `from fastai.callbacks import Callback, SaveModelCallback, ...`; seed_everything
# with random / os / np / torch from the stars; ConfusionMatrix(Callback) and `@dataclass class
# KappaScore(ConfusionMatrix)` with a `weights: Optional[str] = None` field returning add_metrics(last_metrics, 1-k);
# `@dataclass class ChangeDataOnEpoch(Callback)` (fields learn: Learner, i: int) that swaps `self.learn.data` for a
# freshly resampled DataBunch at every epoch end and calls `data.add_tfm(batch_to_half)`; its own FlattenedLoss
# (functools.update_wrapper, a `reduction` property, Rank0Tensor) and LabelSmoothBCEWithLogitsFlat;
# Learner(data, model, metrics=[kappa, accuracy_thresh], model_dir=".", callback_fns=[partial(ChangeDataOnEpoch,
# i=SEED), BnFreeze]); learn.loss_func = ...; learn.split(lambda m: (m._conv_head,)); learn = learn.to_fp16();
# freeze, fit_one_cycle(1, 1e-2), recorder.plot_losses(), unfreeze, fit_one_cycle(15, 1e-3,
# callbacks=[SaveModelCallback(learn, name='best_model')]), load('best_model'), validate(),
# learn.data.valid_dl.dataset.items, get_preds(ds_type=DatasetType.Valid) and get_preds(ds_type=DatasetType.Test),
# and a submission from numpy thresholds. It defines a module-level `get_preds(arr)` of its own.
# Adapted: imports (fastai -> fastbook_core: `from fastai.vision import *` gave only training-core names here ->
# `from fastbook_core.basics import *`); the image data-block pipeline (ImageList.from_df ... .databunch,
# MultiCategoryList labels, show_batch, OpenCV preprocessing) -> get_data(seed) building DataBunch.create(train,
# valid, test_ds=...) from a seeded pool of (3, 16, 16) "images" with 5-way ordinal multi-hot labels, resampling
# class 0 by seed as the kernel does; EfficientNet-B3 -> a small net with the same attribute names (_conv_stem ...
# _conv_head, _fc); sklearn/seaborn/cv2 dropped; 1 + 2 epochs of 80 items. Re-written, not copied.
import time
import warnings
import os
from random import shuffle

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt

from fastbook_core import *
from fastbook_core.basics import *
from fastbook_core.callbacks import Callback
from fastbook_core.callbacks import SaveModelCallback, EarlyStoppingCallback, ReduceLROnPlateauCallback


def seed_everything(seed):
    random.seed(seed)
    os.environ['PYTHONHASHSEED'] = str(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    torch.backends.cudnn.deterministic = True

MODEL_NAME = 'efficientnetb03_change_zeros_ord_reg_label_smoothing'
IMG_SIZE = 16
BS = 16
SEED = 425
seed_everything(SEED)


# ---- stand-in for the kernel's csv files and images (not fastai code) ----
POOL = 200
pool_diag = np.random.RandomState(0).choice(5, POOL, p=[.5, .15, .15, .1, .1])
pool_img = torch.randn(POOL, 3, IMG_SIZE, IMG_SIZE, generator=torch.Generator().manual_seed(0)) \
    + torch.tensor(pool_diag, dtype=torch.float32)[:, None, None, None] * 0.3

def get_label(diagnosis):
    return ','.join([str(i) for i in range(diagnosis + 1)])

def get_train_df(seed, num_zeros=20):
    df = pd.DataFrame({'image_path': [f'train_images/{i}.png' for i in range(POOL)], 'diagnosis': pool_diag,
                       'is_valid': np.arange(POOL) >= 160, 'idx': np.arange(POOL)})
    tr = df[~df.is_valid]
    df = pd.concat([tr[tr.diagnosis == 0].sample(n=num_zeros, random_state=seed), tr[tr.diagnosis != 0],
                    df[df.is_valid]]).sample(frac=1, random_state=seed)
    df['label'] = df.diagnosis.apply(get_label)
    return df

class OrdinalImages(torch.utils.data.Dataset):
    "What the kernel's ImageList + MultiCategoryList gave: an image and the multi-hot of its label string."
    def __init__(self, df):
        self.items = np.array(df.image_path)
        self.x = pool_img[np.array(df.idx)]
        self.y = torch.tensor(np.stack([np.isin(np.arange(5), [int(c) for c in l.split(',')]) for l in df.label]),
                              dtype=torch.float32)
    def __len__(self): return len(self.items)
    def __getitem__(self, i): return self.x[i], self.y[i]

sample_df = pd.DataFrame({'id_code': [f'test_{i}' for i in range(24)], 'diagnosis': 0})
test_ds = OrdinalImages(pd.DataFrame({'image_path': sample_df.id_code, 'idx': np.arange(24), 'label': '0'}))

def get_data(seed, size=IMG_SIZE):
    df_train = get_train_df(seed)
    data = DataBunch.create(OrdinalImages(df_train[~df_train.is_valid]), OrdinalImages(df_train[df_train.is_valid]),
                            test_ds=test_ds, bs=BS, path='./')
    return data
# ----


def get_preds(arr):
    mask = arr == 0
    return np.clip(np.where(mask.any(1), mask.argmax(1), 5) - 1, 0, 4)

class ConfusionMatrix(Callback):
    "Computes the confusion matrix."
    def on_train_begin(self, **kwargs):
        self.n_classes = 0

    def on_epoch_begin(self, **kwargs):
        self.cm = None

    def on_batch_end(self, last_output: Tensor, last_target: Tensor, **kwargs):
        preds = torch.tensor(get_preds((torch.sigmoid(last_output) > 0.5).cpu().numpy()))
        targs = torch.tensor(get_preds(last_target.cpu().numpy()))
        if self.n_classes == 0:
            self.n_classes = last_output.shape[-1]
            self.x = torch.arange(0, self.n_classes)
        cm = ((preds == self.x[:, None]) & (targs == self.x[:, None, None])).sum(dim=2, dtype=torch.float32)
        if self.cm is None: self.cm = cm
        else: self.cm += cm

    def on_epoch_end(self, **kwargs):
        self.metric = self.cm

@dataclass
class KappaScore(ConfusionMatrix):
    "Compute the rate of agreement (Cohens Kappa)."
    weights: Optional[str] = None

    def on_epoch_end(self, last_metrics, **kwargs):
        sum0 = self.cm.sum(dim=0)
        sum1 = self.cm.sum(dim=1)
        expected = torch.einsum('i,j->ij', (sum0, sum1)) / sum0.sum()
        if self.weights is None:
            w = torch.ones((self.n_classes, self.n_classes))
            w[self.x, self.x] = 0
        elif self.weights == "linear" or self.weights == "quadratic":
            w = torch.zeros((self.n_classes, self.n_classes))
            w += torch.arange(self.n_classes, dtype=torch.float)
            w = torch.abs(w - torch.t(w)) if self.weights == "linear" else (w - torch.t(w)) ** 2
        else: raise ValueError('Unknown weights. Expected None, "linear", or "quadratic".')
        k = torch.sum(w * self.cm) / torch.sum(w * expected)
        return add_metrics(last_metrics, 1 - k)

@dataclass
class ChangeDataOnEpoch(Callback):
    learn: Learner
    i: int

    def on_epoch_end(self, **kwargs):
        print(f'Data seed {self.i}')
        self.learn.data = get_data(seed=self.i)
        self.learn.data.add_tfm(batch_to_half)
        self.i += 1


class FlattenedLoss():
    "Same as `func`, but flattens input and target."
    def __init__(self, func, *args, axis: int = -1, floatify: bool = False, is_2d: bool = True, **kwargs):
        self.func, self.axis, self.floatify, self.is_2d = func(*args, **kwargs), axis, floatify, is_2d
        functools.update_wrapper(self, self.func)

    def __repr__(self): return f"FlattenedLoss of {self.func}"
    @property
    def reduction(self): return self.func.reduction
    @reduction.setter
    def reduction(self, v): self.func.reduction = v

    def __call__(self, input: Tensor, target: Tensor, **kwargs) -> Rank0Tensor:
        input = input.transpose(self.axis, -1).contiguous()
        target = target.transpose(self.axis, -1).contiguous()
        if self.floatify: target = target.float()
        target = (target * 0.9 + 0.05)  # label smoothing
        target[:, 0] = 1
        input = input.view(-1, input.shape[-1]) if self.is_2d else input.view(-1)
        return self.func.__call__(input, target.view(-1), **kwargs)

def LabelSmoothBCEWithLogitsFlat(*args, axis: int = -1, floatify: bool = True, **kwargs):
    "Same as `nn.BCEWithLogitsLoss`, but flattens input and target."
    return FlattenedLoss(nn.BCEWithLogitsLoss, *args, axis=axis, floatify=floatify, is_2d=False, **kwargs)


# ---- stand-in for efficientnet_pytorch.EfficientNet (not fastai code): the same attribute names ----
class TinyEfficientNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(8)
        self._blocks = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self._conv_head = nn.Conv2d(16, 32, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(32)
        self._fc = nn.Linear(32, num_classes)
    def forward(self, x):
        x = F.relu(self._bn0(self._conv_stem(x)))
        x = F.relu(self._bn1(self._conv_head(self._blocks(x))))
        return self._fc(x.mean((2, 3)))
# ----

data = get_data(seed=1)
start_time = time.time()
kappa = KappaScore(weights="quadratic")
change_data_cb = partial(ChangeDataOnEpoch, i=SEED)
model = TinyEfficientNet(num_classes=5)

learn = Learner(data, model, metrics=[kappa, accuracy_thresh], model_dir=".", callback_fns=[change_data_cb, BnFreeze])
learn.loss_func = LabelSmoothBCEWithLogitsFlat()
learn.split(lambda m: (m._conv_head,))
learn = learn.to_fp16()
learn.freeze()
learn.fit_one_cycle(1, 1e-2)
learn.recorder.plot_losses()
learn.unfreeze()
learn.fit_one_cycle(2, 1e-3, callbacks=[SaveModelCallback(learn, name='best_model')])
learn.recorder.plot_losses()
learn.load('best_model')
print(learn.validate())
print(f'Trained one fold in {time.time() - start_time} seconds')

val_items = learn.data.valid_dl.dataset.items
val_preds, val_y = learn.get_preds(ds_type=DatasetType.Valid)
val_preds_df = pd.concat([
    pd.DataFrame({'id_code': [v.split('/')[-1].split('.')[0] for v in val_items],
                  'diagnosis': val_y.argmax(1).numpy(), 'preds': get_preds((val_preds > 0.5).numpy())}),
    pd.DataFrame(val_preds.numpy())], axis=1)
print(val_preds_df.head(5))
preds, y = learn.get_preds(ds_type=DatasetType.Test)
sample_df.diagnosis = get_preds((preds > 0.5).cpu().numpy())
sample_df.to_csv('submission.csv', index=False)

# what the kernel relied on
assert len(learn.layer_groups) == 2
assert learn.recorder.names[3:5] == ['kappa_score', 'accuracy_thresh'], learn.recorder.names
assert isinstance(learn.callback_fns[-2], partial) and learn.callback_fns[-1] is BnFreeze
assert len(val_preds_df) == 40 and preds.shape == (24, 5) and os.path.isfile('submission.csv')
assert (learn.path / learn.model_dir / 'best_model.pth').is_file()
print('done')
