# After: helme/ecg_ptbxl_benchmarking, code/models/fastai_model.py (N. Strodthoff et al., the PTB-XL ECG benchmark):
# `fastai_model`, which trains 1-d conv / RNN models on ECG windows with fastai v1's training core:
# DataBunch.create(ds_train, ds_valid, bs=...) from its own Dataset, Learner(db, model, loss_func=<plain function>,
# metrics=[], wd=..., path=...); `metric_func`, a Callback metric with a `name` attribute that collects outputs in
# on_batch_end and returns add_metrics(last_metrics, ...) (uses to_np, F, np from the star imports);
# learn.metrics.append(metric) and learn.callback_fns.append(partial(SaveModelCallback, monitor='macro_auc', ...))
# after construction; learn.callback_fns.append(partial(GradientClipping, clip=0.25)) for RNNs; lr_find, then a plot
# from recorder.losses / recorder.lrs and one from recorder.nb_batches / recorder.val_losses (ifnone, range_of);
# fit_one_cycle(epochs, lr); fine-tuning: learn.path switched to load a pretrained model, output layer exchanged
# (apply_init), learn.split(layer_groups), learn.train_bn, freeze / unfreeze, fit_one_cycle(n, slice(lo, hi));
# learn.save(name) / learn.load(name); get_preds() and learn.data.valid_ds.get_id_mapping().
# Adapted: imports (fastai -> fastbook_core); `models.timeseries_utils` / `utils.utils` / the model zoo -> small
# stand-ins below (marked): a Dataset of fixed windows with get_id_mapping, numpy macro-AUC and Fmax in place of
# sklearn, a small conv net and a GRU with the zoo's get_layer_groups / get_output_layer / set_output_layer;
# PTB-XL -> seeded (100, 12) signals (2.5 s at 40 Hz) with 5 multi-hot labels; `.cuda()` on the new head dropped;
# the fine-tuning run without gradual unfreezing (one lr_find less); 2 epochs. Re-written, not copied.
import numpy as np, pandas as pd  # the stand-in for models.timeseries_utils imports these (its star exports them)

from fastbook_core import *
from fastbook_core.basic_data import *
from fastbook_core.basic_train import *
from fastbook_core.train import *
from fastbook_core.metrics import *
from fastbook_core.torch_core import *
from fastbook_core.callbacks.tracker import SaveModelCallback

from pathlib import Path
from functools import partial
import math
import torch

import matplotlib
import matplotlib.pyplot as plt

from fastbook_core.callback import Callback


# ---- stand-ins for models.timeseries_utils, utils.utils and the model zoo (not fastai code) ----
class TimeseriesDatasetCrops(torch.utils.data.Dataset):
    "One window per record: (channels, time) float tensor and its label vector."
    def __init__(self, df, output_size, npy_data, col_lbl='label', **kwargs):
        self.df, self.output_size, self.data, self.col_lbl = df, output_size, npy_data, col_lbl
    def __len__(self): return len(self.df)
    def __getitem__(self, i):
        rec = self.df['data'].iloc[i]
        x = torch.from_numpy(self.data[rec][:self.output_size].T.copy())
        return x, torch.from_numpy(np.asarray(self.df[self.col_lbl].iloc[i]))
    def get_id_mapping(self): return np.array(self.df['data'])

def ToTensor(): return None

def aggregate_predictions(preds, idmap=None, aggregate_fn=np.mean):
    ids = np.unique(idmap)
    return np.stack([aggregate_fn(preds[idmap == i], axis=0) for i in ids])

def one_hot_np(y, n): return np.eye(n)[y.astype(int)]

def _auc(y, s):
    pos, neg = s[y > 0.5], s[y <= 0.5]
    if len(pos) == 0 or len(neg) == 0: return 0.5
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())

def evaluate_experiment(y_true, y_pred):
    macro_auc = float(np.mean([_auc(y_true[:, c], y_pred[:, c]) for c in range(y_true.shape[1])]))
    fmax = 0.
    for t in np.linspace(0.05, 0.95, 19):
        p = y_pred > t
        tp = (p & (y_true > 0.5)).sum(); prec = tp / max(p.sum(), 1); rec = tp / max((y_true > 0.5).sum(), 1)
        if prec + rec > 0: fmax = max(fmax, 2 * prec * rec / (prec + rec))
    return {'macro_auc': macro_auc, 'Fmax': fmax}

class ClassificationModel(object):
    def __init__(self): pass

def weight_init(m):
    if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)): torch.nn.init.kaiming_normal_(m.weight)

class tiny_conv1d(torch.nn.Sequential):
    def __init__(self, num_classes, input_channels, **kwargs):
        super().__init__(torch.nn.Conv1d(input_channels, 16, 5, padding=2), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                         torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(16, num_classes))
    def get_layer_groups(self): return (torch.nn.Sequential(*list(self.children())[:5]), self[-1])
    def get_output_layer(self): return self[-1]
    def set_output_layer(self, x): self[-1] = x

class RNN1d(torch.nn.Module):
    def __init__(self, input_channels, num_classes, **kwargs):
        super().__init__()
        self.rnn = torch.nn.GRU(input_channels, 16, batch_first=True)
        self.head = torch.nn.Linear(16, num_classes)
    def forward(self, x): return self.head(self.rnn(x[:, :, ::4].transpose(1, 2))[0][:, -1])  # every 4th step
    def get_layer_groups(self): return (self.rnn, self.head)
    def get_output_layer(self): return self.head
    def set_output_layer(self, x): self.head = x
# ---- end of stand-ins ----


class metric_func(Callback):
    "Score from a user function over the whole epoch's outputs (optionally dropping ignore_idx targets)."
    def __init__(self, func, name="metric_func", ignore_idx=None, one_hot_encode_target=True, argmax_pred=False,
                 softmax_pred=True, flatten_target=True, sigmoid_pred=False, metric_component=None):
        super().__init__()
        self.func, self.ignore_idx = func, ignore_idx
        self.one_hot_encode_target, self.argmax_pred, self.softmax_pred = one_hot_encode_target, argmax_pred, softmax_pred
        self.flatten_target, self.sigmoid_pred, self.metric_component = flatten_target, sigmoid_pred, metric_component
        self.name = name

    def on_epoch_begin(self, **kwargs):
        self.y_pred, self.y_true = None, None

    def on_batch_end(self, last_output, last_target, **kwargs):
        y_pred_flat = last_output.view((-1, last_output.size()[-1]))
        if self.flatten_target: y_true_flat = last_target.view(-1)
        y_true_flat = last_target
        if self.argmax_pred is True: y_pred_flat = y_pred_flat.argmax(dim=1)
        elif self.softmax_pred is True: y_pred_flat = F.softmax(y_pred_flat, dim=1)
        elif self.sigmoid_pred is True: y_pred_flat = torch.sigmoid(y_pred_flat)
        if self.ignore_idx is not None:
            keep = (y_true_flat != self.ignore_idx).nonzero().squeeze()
            y_pred_flat, y_true_flat = y_pred_flat[keep], y_true_flat[keep]
        y_pred_flat, y_true_flat = to_np(y_pred_flat), to_np(y_true_flat)
        if self.one_hot_encode_target is True: y_true_flat = one_hot_np(y_true_flat, last_output.size()[-1])
        if self.y_pred is None: self.y_pred, self.y_true = y_pred_flat, y_true_flat
        else:
            self.y_pred = np.concatenate([self.y_pred, y_pred_flat], axis=0)
            self.y_true = np.concatenate([self.y_true, y_true_flat], axis=0)

    def on_epoch_end(self, last_metrics, **kwargs):
        self.metric_complete = self.func(self.y_true, self.y_pred)
        if self.metric_component is not None:
            return add_metrics(last_metrics, self.metric_complete[self.metric_component])
        return add_metrics(last_metrics, self.metric_complete)

def fmax_metric(targs, preds): return evaluate_experiment(targs, preds)["Fmax"]
def auc_metric(targs, preds): return evaluate_experiment(targs, preds)["macro_auc"]

def lr_find_plot(learner, path, filename="lr_find", n_skip=10, n_skip_end=2):
    "lr_find, then save the loss against the learning rate as a png."
    learner.lr_find()
    backend_old = matplotlib.get_backend()
    plt.switch_backend('agg')
    plt.ylabel("loss"); plt.xlabel("learning rate (log scale)")
    losses = [to_np(x) for x in learner.recorder.losses[n_skip:-(n_skip_end + 1)]]
    plt.plot(learner.recorder.lrs[n_skip:-(n_skip_end + 1)], losses)
    plt.xscale('log')
    plt.savefig(str(path / (filename + '.png')))
    plt.switch_backend(backend_old)

def losses_plot(learner, path, filename="losses", last: int = None):
    "Save training and validation losses against batches processed as a png."
    backend_old = matplotlib.get_backend()
    plt.switch_backend('agg')
    plt.ylabel("loss"); plt.xlabel("Batches processed")
    last = ifnone(last, len(learner.recorder.nb_batches))
    l_b = np.sum(learner.recorder.nb_batches[-last:])
    iterations = range_of(learner.recorder.losses)[-l_b:]
    plt.plot(iterations, learner.recorder.losses[-l_b:], label='Train')
    val_iter = np.cumsum(learner.recorder.nb_batches[-last:]) + np.sum(learner.recorder.nb_batches[:-last])
    plt.plot(val_iter, learner.recorder.val_losses[-last:], label='Validation')
    plt.legend()
    plt.savefig(str(path / (filename + '.png')))
    plt.switch_backend(backend_old)


class fastai_model(ClassificationModel):
    def __init__(self, name, n_classes, freq, outputfolder, input_shape, pretrained=False, input_size=2.5, bs=128,
                 wd=1e-2, epochs=50, lr=1e-2, loss="binary_cross_entropy", pretrainedfolder=None,
                 n_classes_pretrained=None, gradual_unfreezing=True, discriminative_lrs=True, epochs_finetuning=30,
                 early_stopping=None, aggregate_fn="max"):
        super().__init__()
        self.name, self.num_classes, self.target_fs = name, n_classes, freq
        self.outputfolder = Path(outputfolder)
        self.input_size = int(input_size * self.target_fs)
        self.bs, self.wd, self.epochs, self.lr, self.loss, self.input_shape = bs, wd, epochs, lr, loss, input_shape
        if pretrained and n_classes_pretrained is None: n_classes_pretrained = 71
        self.pretrainedfolder = None if pretrainedfolder is None else Path(pretrainedfolder)
        self.n_classes_pretrained = n_classes_pretrained
        self.discriminative_lrs, self.gradual_unfreezing = discriminative_lrs, gradual_unfreezing
        self.epochs_finetuning, self.early_stopping, self.aggregate_fn = epochs_finetuning, early_stopping, aggregate_fn

    def fit(self, X_train, y_train, X_val, y_val):
        X_train = [l.astype(np.float32) for l in X_train]; X_val = [l.astype(np.float32) for l in X_val]
        y_train = [l.astype(np.float32) for l in y_train]; y_val = [l.astype(np.float32) for l in y_val]
        if self.pretrainedfolder is None:
            print("Training from scratch...")
            learn = self._get_learner(X_train, y_train, X_val, y_val)
            learn.model.apply(weight_init)
            lr_find_plot(learn, self.outputfolder)
            learn.fit_one_cycle(self.epochs, self.lr)
            losses_plot(learn, self.outputfolder)
        else:
            print("Finetuning...")
            learn = self._get_learner(X_train, y_train, X_val, y_val, self.n_classes_pretrained)
            learn.path = self.pretrainedfolder
            learn.load(self.pretrainedfolder.stem)
            learn.path = self.outputfolder
            output_layer = learn.model.get_output_layer()
            output_layer_new = nn.Linear(output_layer.in_features, self.num_classes)
            apply_init(output_layer_new, nn.init.kaiming_normal_)
            learn.model.set_output_layer(output_layer_new)
            if self.discriminative_lrs:
                layer_groups = learn.model.get_layer_groups()
                learn.split(layer_groups)
            learn.train_bn = True
            lr = self.lr
            if self.gradual_unfreezing:
                assert self.discriminative_lrs is True
                learn.freeze()
                lr_find_plot(learn, self.outputfolder, "lr_find0")
                learn.fit_one_cycle(self.epochs_finetuning, lr)
                losses_plot(learn, self.outputfolder, "losses0")
            learn.unfreeze()
            lr_find_plot(learn, self.outputfolder, "lr_find" + str(len(layer_groups)))
            learn.fit_one_cycle(self.epochs_finetuning, slice(lr / 1000, lr / 10))
            losses_plot(learn, self.outputfolder, "losses" + str(len(layer_groups)))
        learn.save(self.name)
        return learn

    def predict(self, X):
        X = [l.astype(np.float32) for l in X]
        y_dummy = [np.ones(self.num_classes, dtype=np.float32) for _ in range(len(X))]
        learn = self._get_learner(X, y_dummy, X, y_dummy)
        learn.load(self.name)
        preds, targs = learn.get_preds()
        preds = to_np(preds)
        idmap = learn.data.valid_ds.get_id_mapping()
        return aggregate_predictions(preds, idmap=idmap, aggregate_fn=np.mean if self.aggregate_fn == "mean" else np.amax)

    def _get_learner(self, X_train, y_train, X_val, y_val, num_classes=None):
        df_train = pd.DataFrame({"data": range(len(X_train)), "label": y_train})
        df_valid = pd.DataFrame({"data": range(len(X_val)), "label": y_val})
        ds_train = TimeseriesDatasetCrops(df_train, self.input_size, npy_data=X_train, transforms=[ToTensor()])
        ds_valid = TimeseriesDatasetCrops(df_valid, self.input_size, npy_data=X_val, transforms=[ToTensor()])
        db = DataBunch.create(ds_train, ds_valid, bs=self.bs)
        if self.loss == "binary_cross_entropy": loss = F.binary_cross_entropy_with_logits
        elif self.loss == "cross_entropy": loss = F.cross_entropy
        self.input_channels = self.input_shape[-1]
        metrics = []
        num_classes = self.num_classes if num_classes is None else num_classes
        if self.name.startswith("fastai_gru"):
            model = RNN1d(input_channels=self.input_channels, num_classes=num_classes)
        else:
            model = tiny_conv1d(num_classes=num_classes, input_channels=self.input_channels)
        learn = Learner(db, model, loss_func=loss, metrics=metrics, wd=self.wd, path=self.outputfolder)
        if self.name.startswith("fastai_lstm") or self.name.startswith("fastai_gru"):
            learn.callback_fns.append(partial(GradientClipping, clip=0.25))
        if self.early_stopping is not None:
            if self.early_stopping == "macro_auc":
                metric = metric_func(auc_metric, self.early_stopping, one_hot_encode_target=False, argmax_pred=False,
                                     softmax_pred=False, sigmoid_pred=True, flatten_target=False)
                learn.metrics.append(metric)
                learn.callback_fns.append(partial(SaveModelCallback, monitor=self.early_stopping,
                                                  every='improvement', name=self.name))
            elif self.early_stopping == "valid_loss":
                learn.callback_fns.append(partial(SaveModelCallback, monitor=self.early_stopping,
                                                  every='improvement', name=self.name))
        return learn


# ---- driver (marked): the benchmark's experiment loop, shrunk ----
import tempfile
rng = np.random.RandomState(0)
torch.manual_seed(0)
def make(n):
    y = (rng.rand(n, 5) < 0.3).astype(np.float64)
    X = [rng.randn(100, 12) + y[i] @ rng.randn(5, 12) * 0.5 for i in range(n)]
    return X, [r for r in y]
X_train, y_train = make(96); X_val, y_val = make(32)
out = Path(tempfile.mkdtemp())

base = fastai_model('fastai_xresnet1d101', 5, 40, out / 'fastai_xresnet1d101', [100, 12], bs=32, epochs=2,
                    lr=1e-2, early_stopping='macro_auc')
(out / 'fastai_xresnet1d101').mkdir()
learn = base.fit(X_train, y_train, X_val, y_val)
assert learn.recorder.names[-2:] == ['macro_auc', 'time'], learn.recorder.names
assert len(learn.recorder.metrics) == 2 and 0. <= float(learn.recorder.metrics[-1][0]) <= 1.
assert (out / 'fastai_xresnet1d101' / 'lr_find.png').is_file() and (out / 'fastai_xresnet1d101' / 'losses.png').is_file()
preds = base.predict(X_val)
assert preds.shape == (32, 5)

tuned = fastai_model('fastai_xresnet1d101_ft', 3, 40, out / 'ft', [100, 12], pretrained=True, bs=32, lr=1e-2,
                     pretrainedfolder=out / 'fastai_xresnet1d101', n_classes_pretrained=5, epochs_finetuning=1,
                     gradual_unfreezing=False)
(out / 'ft').mkdir()
y3 = [r[:3] for r in y_train]; y3v = [r[:3] for r in y_val]
learn = tuned.fit(X_train, y3, X_val, y3v)
assert len(learn.layer_groups) == 2 and (out / 'ft' / 'models' / 'fastai_xresnet1d101_ft.pth').is_file()
assert (out / 'ft' / 'lr_find2.png').is_file()

rnn = fastai_model('fastai_gru', 5, 40, out / 'gru', [100, 12], bs=32, epochs=1, lr=1e-2)
(out / 'gru').mkdir()
learn = rnn.fit(X_train, y_train, X_val, y_val)
assert any(type(cb).__name__ == 'GradientClipping' for cb in learn.callbacks) or \
       any(getattr(f, 'func', f).__name__ == 'GradientClipping' for f in learn.callback_fns)
print('done')
