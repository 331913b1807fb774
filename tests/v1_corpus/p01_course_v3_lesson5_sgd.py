# After: fastai/course-v3, nbs/dl1/lesson5-sgd-mnist.ipynb (Jeremy Howard, fast.ai course v3, lesson 5).
# What it uses: `from fastai.basics import *` as the only import (np, torch, nn, optim, plt, TensorDataset
# unqualified), DataBunch.create on TensorDatasets, a hand-written SGD loop over data.train_dl, then
# Learner(data, model, loss_func=..., metrics=accuracy), lr_find, recorder.plot, fit_one_cycle,
# recorder.plot_lr(show_moms=True), recorder.plot_losses.
# Adapted: the import (fastai -> fastbook_core); the pickled MNIST file is replaced by seeded random data of the
# same shapes (784 float features, 10 classes), sizes shrunk; `.cuda()` dropped (CPU). Re-written from the
# notebook's cells, not copied.
from fastbook_core.basics import *

rng = np.random.RandomState(0)
x_train = rng.rand(512, 784).astype(np.float32); y_train = rng.randint(0, 10, 512).astype(np.int64)
x_valid = rng.rand(128, 784).astype(np.float32);  y_valid = rng.randint(0, 10, 128).astype(np.int64)
plt.imshow(x_train[0].reshape((28, 28)), cmap="gray")

x_train, y_train, x_valid, y_valid = map(torch.tensor, (x_train, y_train, x_valid, y_valid))
n, c = x_train.shape
bs = 64
train_ds = TensorDataset(x_train, y_train)
valid_ds = TensorDataset(x_valid, y_valid)
data = DataBunch.create(train_ds, valid_ds, bs=bs)
x, y = next(iter(data.train_dl))
print(x.shape, y.shape)

class Mnist_Logistic(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10, bias=True)
    def forward(self, xb): return self.lin(xb)

model = Mnist_Logistic()
print(model(x).shape, [p.shape for p in model.parameters()])
lr = 2e-2
loss_func = nn.CrossEntropyLoss()

def update(x, y, lr):
    wd = 1e-5
    y_hat = model(x)
    w2 = 0.
    for p in model.parameters(): w2 += (p**2).sum()
    loss = loss_func(y_hat, y) + w2*wd
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(lr * p.grad)
            p.grad.zero_()
    return loss.item()

losses = [update(x, y, lr) for x, y in data.train_dl]
plt.plot(losses)

class Mnist_NN(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(784, 50, bias=True)
        self.lin2 = nn.Linear(50, 10, bias=True)
    def forward(self, xb):
        x = self.lin1(xb)
        x = F.relu(x)
        return self.lin2(x)

model = Mnist_NN()

def update(x, y, lr):
    opt = optim.Adam(model.parameters(), lr)
    y_hat = model(x)
    loss = loss_func(y_hat, y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.item()

losses = [update(x, y, 1e-3) for x, y in data.train_dl]
plt.plot(losses)

learn = Learner(data, Mnist_NN(), loss_func=loss_func, metrics=accuracy)
learn.lr_find()
learn.recorder.plot()
learn.fit_one_cycle(1, 1e-2)
learn.recorder.plot_lr(show_moms=True)
learn.recorder.plot_losses()
print('done', learn.recorder.metrics[-1])
