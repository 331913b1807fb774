# After: oguiza/fastai_extensions, 03_BatchLossFilter.ipynb (Ignacio Oguiza, 2019; also exported as
# fastai_extensions/exp/nb_BatchLossFilter.py): BatchLossFilterCallback, a LearnerCallback (`_order = -20`) that from
# the second epoch on computes each training batch's per-item losses by switching the Learner's loss to
# `reduction='none'` (with v1's ImageDataBunch that loss is CrossEntropyFlat, a FlattenedLoss), keeps the items that
# make up 90% of the batch loss by returning new `last_input`/`last_target` from on_batch_begin, and reports two
# metrics (`loss_perc`, `samp_perc`) through recorder.add_metric_names and add_metrics; attached by a Learner method
# that appends a partial to `callback_fns` (`Learner(data, model, metrics=accuracy).batch_loss_filter(min_loss_perc=.9)`),
# then `learn.save('stage-0')` and a one-cycle fit.
# Adapted: imports (`from fastai_extensions import *`, whose exp/imports.py did `from fastai.vision import *` and
# `from fastai.basic_train import *`, -> `from fastbook_core.basics import *` and `from fastbook_core.basic_train
# import *`; `from fastai.callbacks import *` -> `from fastbook_core.callbacks import *`); CIFAR10 -> seeded
# (3, 32, 32) tensors in 10 classes, in a Dataset whose `loss_func` is CrossEntropyFlat() as v1's CategoryList
# gave; fastai.vision's WideResNet -> simple_cnn (marked); 3 epochs of 256 items. Re-written, not copied.
import math
from fastbook_core.basics import *
from fastbook_core.basic_train import *
from fastbook_core.callbacks import *


class BatchLossFilterCallback(LearnerCallback):
    _order = -20

    def __init__(self, learn: Learner, min_sample_perc: float = 0., min_loss_perc: float = 0.,
                 mixed_precision_batch: bool = False):
        super().__init__(learn)
        assert min_sample_perc > 0. or min_loss_perc > 0., 'min_sample_perc <= 0 and min_loss_perc <= 0'
        self.min_sample_perc, self.min_loss_perc = min_sample_perc, min_loss_perc
        self.learn = learn
        self.model = learn.model
        self.crit = learn.loss_func
        if hasattr(self.crit, 'reduction'): self.red = self.crit.reduction
        self.sel_losses_sum, self.losses_sum = 0., 0.
        self.sel_samples, self.samples = 0., 0.
        self.recorder.add_metric_names(["loss_perc", "samp_perc"])
        self.loss_fp32 = False
        self.mixed_precision_batch = mixed_precision_batch
        for cb in learn.callbacks:
            if isinstance(cb, MixedPrecision): self.loss_fp32 = True

    def on_epoch_begin(self, **kwargs):
        self.sel_losses_sum, self.losses_sum = 0., 0.
        self.sel_samples, self.samples = 0., 0.

    def on_batch_begin(self, last_input, last_target, train, epoch, **kwargs):
        if not train or epoch == 0: return
        if hasattr(self.crit, 'reduction'): setattr(self.crit, 'reduction', 'none')
        with torch.no_grad():
            out = self.model(last_input)
            self.losses = np.array(self.crit(to_float(out) if self.loss_fp32 else out, last_target))
        if hasattr(self.crit, 'reduction'): setattr(self.crit, 'reduction', self.red)
        self.get_loss_idxs()
        self.sel_losses_sum += self.losses[self.idxs].sum()
        self.losses_sum += self.losses.sum()
        self.sel_samples += len(self.idxs)
        self.samples += len(self.losses)
        return {"last_input": last_input[self.idxs], "last_target": last_target[self.idxs]}

    def on_epoch_end(self, epoch, last_metrics, **kwargs):
        loss_perc = self.sel_losses_sum / self.losses_sum if epoch > 0 else 1.
        sample_perc = self.sel_samples / self.samples if epoch > 0 else 1.
        return add_metrics(last_metrics, [loss_perc, sample_perc])

    def on_train_end(self, **kwargs):
        if hasattr(self.learn.loss_func, 'reduction'): setattr(self.learn.loss_func, 'reduction', self.red)
        for cb in learn.callbacks:
            if isinstance(cb, BatchLossFilterCallback): learn.callbacks.remove(cb)

    def get_loss_idxs(self):
        idxs = np.argsort(self.losses)[::-1]
        sample_max = math.ceil(len(idxs) * self.min_sample_perc)
        self.losses /= self.losses.sum()
        loss_max = np.argmax(self.losses[idxs].cumsum() >= self.min_loss_perc) + 1
        if self.loss_fp32 and self.mixed_precision_batch:
            self.idxs = list(idxs[:min(math.ceil(max(sample_max, loss_max) / 8) * 8, len(idxs))])
        else:
            self.idxs = list(idxs[:max(sample_max, loss_max)])


def batch_loss_filter(learn: Learner, min_sample_perc: float = 0., min_loss_perc: float = .9,
                      mixed_precision_batch: bool = False) -> Learner:
    learn.callback_fns.append(partial(BatchLossFilterCallback, min_sample_perc=min_sample_perc,
                                      min_loss_perc=min_loss_perc, mixed_precision_batch=mixed_precision_batch))
    return learn

Learner.batch_loss_filter = batch_loss_filter


# ---- data: seeded CIFAR-shaped images (adapted)
class CifarLike(Dataset):
    "(3, 32, 32) images in 10 classes; the loss v1's CategoryList gave its ImageDataBunch."
    loss_func = CrossEntropyFlat()
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 10, (n,), generator=g)
        self.x = torch.randn(n, 3, 32, 32, generator=g) + (self.y.float() / 5 - 1).view(-1, 1, 1, 1)
        self.c, self.classes = 10, list(range(10))
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return self.x[i], self.y[i]


torch.manual_seed(0)
bs = 64
data = DataBunch.create(CifarLike(256, 0), CifarLike(128, 1), bs=bs, val_bs=bs * 2)
model = simple_cnn((3, 16, 32, 10))  # in place of fastai.vision's WideResNet (adapted)
learn = Learner(data, model, metrics=accuracy).batch_loss_filter(min_loss_perc=.9)
learn.save('stage-0')
learn.fit_one_cycle(3, max_lr=1e-2)

# ---- checks of this driver
assert isinstance(learn.loss_func, FlattenedLoss) and learn.loss_func.reduction == 'mean'
assert learn.recorder.metrics_names == ['accuracy', 'loss_perc', 'samp_perc'], learn.recorder.metrics_names
loss_perc, samp_perc = learn.recorder.metrics[-1][1:]
assert 0.9 <= loss_perc <= 1. and 0. < samp_perc < 1., (loss_perc, samp_perc)
print('batch loss filter kept', f'{samp_perc:.0%}', 'of the items in the last epoch')
