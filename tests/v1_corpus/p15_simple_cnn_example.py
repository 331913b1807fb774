# After: AutuanLiu/Fastai-Notes-V3, example.py (AutuanLiu): the shortest v1 training program of the course notes:
# `model = simple_cnn((3, 16, 16, 2))` on MNIST_SAMPLE (3x28x28 images of two digits, an ImageDataBunch),
# `learn = Learner(data, model)` with the data's default loss (v1: CrossEntropyFlat, from the CategoryList labels),
# `learn.metrics = [accuracy]` set after construction, then `learn.fit(1)` at v1's default learning rate.
# Adapted: imports (`from fastai.vision import *` -> `from fastbook_core.basics import *`, which gives the
# training-core names it uses: simple_cnn, Learner, accuracy; `from fastai.core import *` and
# `from fastai.basic_train import *` -> fastbook_core's); untar_data + ImageDataBunch.from_folder -> seeded
# (3, 28, 28) tensors in two classes, in a Dataset whose `loss_func` is CrossEntropyFlat() as v1's labels gave;
# 512 training and 128 validation items; checks at the end (marked). Re-written, not copied.
from fastbook_core.basics import *
from fastbook_core.core import *
from fastbook_core.basic_train import *


# ---- data: seeded MNIST_SAMPLE-shaped images (adapted)
class TwoDigits(Dataset):
    loss_func = CrossEntropyFlat()  # what v1's CategoryList gave ImageDataBunch
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.rand(n, 3, 28, 28, generator=g) + self.y.float().view(-1, 1, 1, 1)
        self.c, self.classes = 2, ['3', '7']
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return self.x[i], self.y[i]


torch.manual_seed(0)
data = DataBunch.create(TwoDigits(512, 0), TwoDigits(128, 1), bs=64)

model = simple_cnn((3, 16, 16, 2))
learn = Learner(data, model)
learn.metrics = [accuracy]
learn.fit(1)

# ---- checks of this driver
assert isinstance(learn.loss_func, FlattenedLoss) and learn.loss_func.func.__class__.__name__ == 'CrossEntropyLoss'
assert model(data.one_batch()[0]).shape == (64, 2)
val_loss, acc = float(learn.recorder.val_losses[-1]), float(learn.recorder.metrics[-1][0])
assert val_loss < math.log(2), val_loss  # better than chance for two classes
print(f'after one epoch: valid loss {val_loss:.3f}, accuracy {acc:.2f}')
