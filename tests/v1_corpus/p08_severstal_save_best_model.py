# After: sanch7/severstal-steel-detection-challenge, utils/callbacks.py (sanch7): SaveBestModel, a LearnerCallback
# written against `from fastai.torch_core import *` (Tensor, MetricsList, Any in its annotations) that saves
# learn.save(ckpt_name) when last_metrics[-1] improves and learn.save('best_loss') when smooth_loss improves.
# Adapted: imports (fastai -> fastbook_core); seeded synthetic data and a small model in place of the steel
# segmentation data and U-Net; a driver as a training script would use it (callback_fns with partial).
# Re-written, not copied.
from fastbook_core.torch_core import *
from fastbook_core.basic_train import Learner, LearnerCallback


class SaveBestModel(LearnerCallback):
    def __init__(self, learn:Learner, ckpt_name:str='best_model'):
        super().__init__(learn)
        self.ckpt_name = ckpt_name
        self.learn = learn
        self.best_loss = None
        self.best_metric = None

    def on_epoch_end(self, epoch: int, smooth_loss: Tensor, last_metrics: MetricsList, **kwargs: Any) -> bool:
        if self.best_metric is None or last_metrics[-1] > self.best_metric:
            self.best_metric = last_metrics[-1]
            self.learn.save(f'{self.ckpt_name}')
        if self.best_loss is None or smooth_loss < self.best_loss:
            self.best_loss = smooth_loss
            self.learn.save(f'best_loss')


import tempfile
from functools import partial
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.metrics import dice
import fastbook_core.train  # the repository's scripts import fastai.vision, which imports train (fit_one_cycle)
torch.manual_seed(0)
x = torch.randn(160, 1, 8, 8); y = (x > 0.5).long().squeeze(1)
data = DataBunch.create(TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:]), bs=16, path=tempfile.mkdtemp())
model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))
learn = Learner(data, model, loss_func=nn.CrossEntropyLoss(), metrics=[dice],
                callback_fns=[partial(SaveBestModel, ckpt_name='best_model')])
learn.fit_one_cycle(3, 1e-2)
learn.load('best_model')
assert (learn.path/learn.model_dir/'best_loss.pth').is_file()
print('done', learn.save_best_model.best_metric)
