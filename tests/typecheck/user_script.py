"A user's script, type-checked by tests/test_typing.py (mypy and pyright must see the whole API and report nothing) and run by it."
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basics import DataBunch, DatasetType, Learner, accuracy, load_learner
import fastbook_core.distributed  # attaches to_distributed and to_parallel to Learner, as importing fastai v1's did

x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
data = DataBunch.create(TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:]), bs=16, device='cpu')
learn = Learner(data, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), metrics=[accuracy], silent=True)
learn.fit(1, 1e-2)
learn.fit_one_cycle(1, 1e-2)
learn.fit_fc(1, 1e-2)
learn.to_parallel()
learn.lr_find(num_it=5)
preds, targets = learn.get_preds()
metrics: list = learn.validate()
pred, idx, probs = learn.predict(x[0])
saved = learn.save('model', return_path=True)
learn.load('model')
learn.export()
summary: str = learn.summary()
tta = learn.TTA(augment=lambda b: b, n=1)
interp = learn.interpret()
fig = learn.recorder.plot_losses(return_fig=True)
inference = load_learner(Path(learn.path))
print(type(inference.predict(x[0])[0]))
