# After: a fastai v1 histopathology active-learning program in the public code index (file id 15438725148; the
# index does not name its repository): CountSamplingRateCallback, a LearnerCallback that allocates counters of
# size self.learn.data.c at train begin (DataBunch.c from its own Dataset's `c`), reads kwargs["train"] and
# kwargs["last_target"] at every batch begin, and prints the class balance at train end; its datasets are plain
# torch Datasets with a `c` attribute that return (x, LongTensor([label])).
# Adapted: imports (`from fastai.vision import *` -> `from fastbook_core.basics import *` for the training-core
# names it uses: LearnerCallback, Learner, Any, torch, Dataset); the slide patches become seeded tensors;
# a short driver. Re-written, not copied.
from fastbook_core.basics import *


class PatchDataset(Dataset):
    def __init__(self, n, seed, class_dict):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.labels = (self.x.mean((1, 2, 3)) > 0).long()
        self.class_dict = class_dict
        self.c = len(class_dict)
    def __len__(self): return len(self.x)
    def __getitem__(self, idx): return self.x[idx], LongTensor([int(self.labels[idx])])


class CountSamplingRateCallback(LearnerCallback):
    def __init__(self, learn: Learner):
        super().__init__(learn)

    def on_train_begin(self, **kwargs):
        self.sampling_rate_train = torch.zeros((self.learn.data.c,))
        self.sampling_rate_valid = torch.zeros((self.learn.data.c,))

    def on_batch_begin(self, **kwargs):
        if kwargs["train"]:
            for y in kwargs["last_target"]: self.sampling_rate_train[int(y)] += 1
        else:
            for y in kwargs["last_target"]: self.sampling_rate_valid[int(y)] += 1

    def on_train_end(self, **kwargs: Any) -> None:
        print(f"trained with {torch.sum(self.sampling_rate_train)} patches "
              f"({self.sampling_rate_train[1] / torch.sum(self.sampling_rate_train) * 100:.2f}% tumor)")
        print(f"validated with {torch.sum(self.sampling_rate_valid)} patches "
              f"({self.sampling_rate_valid[1] / torch.sum(self.sampling_rate_valid) * 100:.2f}% tumor)")


class_dict = {0: 'normal', 1: 'tumor'}
data = DataBunch.create(PatchDataset(96, 0, class_dict), PatchDataset(32, 1, class_dict), bs=16)
model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
loss = lambda out, targ: F.cross_entropy(out, targ.view(-1))
learn = Learner(data, model, loss_func=loss, callback_fns=[CountSamplingRateCallback])
learn.fit(2, 1e-2)
cb = learn.count_sampling_rate_callback
assert int(cb.sampling_rate_train.sum()) == 2 * 96 and int(cb.sampling_rate_valid.sum()) == 2 * 32
