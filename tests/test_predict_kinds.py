"`Learner.predict` on what v1 users bring: a label-smoothing loss, a loss of their own, multi-label, regression."
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basics import *


def _learner(loss_func, ys, classes=None, n_out=3):
    torch.manual_seed(0)
    xs = torch.randn(48, 4)
    data = DataBunch.create(TensorDataset(xs, ys), TensorDataset(xs, ys), bs=16, classes=classes)
    return Learner(data, nn.Linear(4, n_out), loss_func=loss_func, silent=True)


def test_label_smoothing_predicts_a_class_and_probabilities():
    learn = _learner(LabelSmoothingCrossEntropy(), torch.randint(0, 3, (48,)), classes=['x', 'y', 'z'])
    pred, idx, probs = learn.predict(torch.randn(4))
    assert pred in ('x', 'y', 'z') and pred == ['x', 'y', 'z'][int(idx)]
    assert probs.sum().item() == pytest.approx(1.) and (probs >= 0).all()
    preds, _ = learn.get_preds()
    assert torch.allclose(preds.sum(1), torch.ones(len(preds)))  # softmax, not logits


def test_a_loss_of_ones_own_with_classes_predicts_the_class():
    def my_loss(out, y): return F.cross_entropy(out, y) + 0.
    learn = _learner(my_loss, torch.randint(0, 3, (48,)), classes=['x', 'y', 'z'])
    pred, idx, raw = learn.predict(torch.randn(4))
    assert pred == ['x', 'y', 'z'][int(raw.argmax())] and int(idx) == int(raw.argmax())


def test_multi_label_predicts_every_class_over_thresh():
    xs = torch.randn(48, 4)
    learn = _learner(BCEWithLogitsFlat(), torch.stack([xs[:, 0] > 0, xs[:, 1] > 0], 1).float(), classes=['a', 'b'], n_out=2)
    with torch.no_grad(): learn.model.weight.copy_(torch.tensor([[5., 0, 0, 0], [0, 5., 0, 0]])); learn.model.bias.zero_()
    names, hot, probs = learn.predict(torch.tensor([1., -1., 0., 0.]))
    assert names == ['a'] and hot.tolist() == [1., 0.]
    names, hot, _ = learn.predict(torch.tensor([1., -1., 0., 0.]), thresh=0.0)
    assert names == ['a', 'b']
    learn.data.classes = None  # without names: the multi-hot vector
    names, hot, _ = learn.predict(torch.tensor([1., 1., 0., 0.]))
    assert torch.equal(names, torch.tensor([1., 1.]))


def test_regression_still_returns_the_value():
    learn = _learner(F.mse_loss, torch.randn(48, 1), n_out=1)
    pred, val, raw = learn.predict(torch.randn(4))
    assert torch.equal(pred, raw) and torch.equal(val, raw)


def test_a_loss_of_ones_own_with_integer_targets_predicts_a_class():
    # review5_v1 07.py: v1 read classification off the labels; here, off integer targets
    def my_loss(out, y): return F.cross_entropy(out, y) * 1.0
    learn = _learner(my_loss, torch.randint(0, 3, (48,)))
    pred, idx, raw = learn.predict(torch.randn(4))
    assert pred.ndim == 0 and int(pred) == int(raw.argmax()) and int(idx) == int(pred)


def test_predict_applies_the_datas_transforms_as_get_preds_does():
    "v1's predict went through `one_item`, so the data's dl_tfms (a normalization, say) apply to the item (review 6)."
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner
    torch.manual_seed(0)
    x, y = torch.randn(32, 3) * 5 + 10, torch.randint(0, 2, (32,))
    calls = []
    def normalize(b):
        calls.append(len(b[0]))
        return (b[0] - 10) / 5, b[1]
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', dl_tfms=[normalize])
    learn = Learner(data, nn.Linear(3, 2), silent=True)
    preds, _ = learn.get_preds()
    calls.clear()
    _, idx, raw = learn.predict(x[0])
    assert calls == [1], calls  # the transform ran once, on a batch of one
    assert torch.allclose(raw, preds[0], atol=1e-6)  # the same prediction as get_preds gives for that item
