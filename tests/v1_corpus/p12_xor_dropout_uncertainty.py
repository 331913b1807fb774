# After: a fastai v1 experiment in the public code index (file id 30094424224, an active-learning / uncertainty
# repository whose name the index does not give): an XOR toy problem trained with
# `from fastai.vision import Learner, accuracy` and `from fastai.basic_data import DataBunch`:
# DataBunch.create(train_ds, train_ds, bs=10) on a TensorDataset(FloatTensor(x), LongTensor(y)) built from a
# numpy boolean label array, Learner(data, model, metrics=accuracy, loss_func=CrossEntropyLoss()),
# learner.fit_one_cycle(50), then the model is used directly (MC-dropout estimates) outside fastai.
# Adapted: imports (fastai.vision -> fastbook_core.basics for the two training-core names); its Dense model
# (repository code) is a small MLP with dropout; the estimator is replaced by a direct MC-dropout average; seeded
# data; 50 epochs -> 3; no .cuda(). Re-written, not copied.
import torch
from torch.utils.data import TensorDataset
import numpy as np
from fastbook_core.basics import Learner, accuracy
from fastbook_core.basic_data import DataBunch


class Dense(torch.nn.Module):
    def __init__(self, layers, dropout_rate=0.5):
        super().__init__()
        self.fcs = torch.nn.ModuleList([torch.nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:])])
        self.dropout_rate = dropout_rate
    def forward(self, x, dropout_rate=None):
        p = self.dropout_rate if dropout_rate is None else dropout_rate
        for fc in self.fcs[:-1]:
            x = torch.nn.functional.dropout(torch.relu(fc(x)), p, training=self.training or dropout_rate is not None)
        return self.fcs[-1](x)


def xor(points, noise_level=0.):
    rng = np.random.RandomState(0)
    x = 2*rng.random_sample((points, 2)) - 1
    noised_x = x + noise_level * rng.randn(points, 2)
    y = np.logical_xor(noised_x[:, 0] > 0, noised_x[:, 1] > 0)
    return x, y


def train(x, y):
    loss_func = torch.nn.CrossEntropyLoss()
    model = Dense((2, 32, 32, 2), dropout_rate=0.5)
    train_ds = TensorDataset(torch.FloatTensor(x), torch.LongTensor(y))
    data = DataBunch.create(train_ds, train_ds, bs=10)
    learner = Learner(data, model, metrics=accuracy, loss_func=loss_func)
    learner.fit_one_cycle(3)
    return model


for noise_level in [0, 0.1]:
    x, y = xor(100, noise_level)
    model = train(x, y)
    with torch.no_grad():
        mc = torch.stack([torch.softmax(model(torch.FloatTensor(x), dropout_rate=0.5), 1) for _ in range(5)])
    print(noise_level, mc.mean(0)[:3], mc.std(0).mean())
