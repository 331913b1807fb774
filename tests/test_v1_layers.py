"""fastai v1's `fastai.layers` (issue 27): the names, and the semantics v1 programs rely on.

The facts are fastai v1's (github:fastai/fastai1, fastai/layers.py at HEAD = 1.0.61): its `__all__`, the flattening
of `FlattenedLoss` (class axis moved last, `(-1, n)` or `(-1,)`, targets as floats when `floatify`), `Flatten`'s
`full`, `simple_cnn`'s layers. The documented differences (on the layers page) are checked as such: `FlattenedLoss`
is an `nn.Module` (so that a safe `load_learner` reads it), `BatchZero` zeroes `conv_layer`'s batchnorm scale, and
`icnr` survives the weight normalisation of `PixelShuffle_ICNR`.
"""
import copy, pickle, warnings
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import fastbook_core.layers as layers
from fastbook_core.layers import (BCEFlat, BCEWithLogitsFlat, CrossEntropyFlat, Debugger, Flatten, FlattenedLoss,
                                  LabelSmoothingCrossEntropy, MSELossFlat, NormType, PixelShuffle_ICNR, SigmoidRange,
                                  conv_layer, res_block, sigmoid_range, simple_cnn)
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner, load_learner
from fastbook_core.torch_core import NoneReduceOnCPU, set_seed

# fastai v1's fastai/layers.py __all__, as its source has it
V1_ALL = ['AdaptiveConcatPool2d', 'BCEWithLogitsFlat', 'BCEFlat', 'MSELossFlat', 'CrossEntropyFlat', 'Debugger',
          'Flatten', 'Lambda', 'PoolFlatten', 'View', 'ResizeBatch', 'bn_drop_lin', 'conv2d', 'conv2d_trans',
          'conv_layer', 'embedding', 'simple_cnn', 'NormType', 'relu', 'batchnorm_2d', 'trunc_normal_',
          'PixelShuffle_ICNR', 'icnr', 'NoopLoss', 'WassersteinLoss', 'SelfAttention', 'SequentialEx', 'MergeLayer',
          'res_block', 'sigmoid_range', 'SigmoidRange', 'PartialLayer', 'FlattenedLoss', 'BatchNorm1dFlat',
          'LabelSmoothingCrossEntropy', 'PooledSelfAttention2d']


def _star(module):
    ns = {}
    exec(f'from {module} import *', ns)
    return ns


def test_star_import_is_v1s_all():
    assert sorted(layers.__all__) == sorted(V1_ALL)
    ns = _star('fastbook_core.layers')
    assert not [n for n in V1_ALL if n not in ns]
    assert 'conv1d' not in ns and callable(layers.conv1d)  # v1: in the module, not in its __all__


def test_basics_gives_the_layers_names():
    ns = _star('fastbook_core.basics')
    missing = [n for n in V1_ALL if n not in ns]
    assert not missing, missing
    assert ns['MSELossFlat'] is MSELossFlat and ns['Flatten'] is Flatten


# ---- flattened losses

def test_cross_entropy_flat_on_sequences_with_axis():
    set_seed(0)
    out, y = torch.randn(4, 6, 3), torch.randint(0, 3, (4, 6))
    want = F.cross_entropy(out.reshape(-1, 3), y.reshape(-1))
    assert torch.allclose(CrossEntropyFlat()(out, y), want)
    assert torch.allclose(CrossEntropyFlat(axis=1)(out.transpose(1, 2), y), want)   # (bs, classes, seq)
    with pytest.raises(RuntimeError):  # the plain loss wants the classes on axis 1: v1's reason for the flat one
        nn.CrossEntropyLoss()(out, y)


def test_cross_entropy_flat_keeps_weight_and_reduction_of_its_func():
    w = torch.tensor([1., 2., 3.])
    lf = CrossEntropyFlat(weight=w)
    assert isinstance(lf.func, nn.CrossEntropyLoss) and torch.equal(lf.weight, w) and lf.reduction == 'mean'
    out, y = torch.randn(5, 3), torch.randint(0, 3, (5,))
    assert torch.allclose(lf(out, y), F.cross_entropy(out, y, weight=w))
    with NoneReduceOnCPU(lf) as per_item:   # what v1's get_preds(with_loss=True) did
        assert per_item(out, y).shape == (5,)
    assert lf.reduction == 'mean' and lf.func.reduction == 'mean'
    lf.weight = None
    assert lf.func.weight is None
    assert repr(lf) == 'FlattenedLoss of CrossEntropyLoss()' and (lf.axis, lf.floatify, lf.is_2d) == (-1, False, True)


def test_mse_loss_flat_flattens_bs_1_against_bs():
    pred, targ = torch.tensor([[1.], [2.], [3.]]), torch.tensor([1., 2., 5.])
    assert torch.allclose(MSELossFlat()(pred, targ), torch.tensor(4 / 3))
    assert torch.allclose(MSELossFlat()(pred.view(-1), targ.view(-1, 1)), torch.tensor(4 / 3))
    with warnings.catch_warnings(record=True) as w:  # the plain loss broadcasts to (3, 3), with a warning
        warnings.simplefilter('always')
        assert not torch.allclose(nn.MSELoss()(pred, targ), torch.tensor(4 / 3))
    assert any('broadcast' in str(o.message) for o in w)
    assert MSELossFlat()(pred, torch.tensor([1, 2, 5])).dtype == torch.float32  # integer targets: floatify


def test_bce_flat_losses_with_float_and_int_targets():
    set_seed(1)
    logits = torch.randn(6, 1)
    for y in (torch.tensor([0., 1., 1., 0., 1., 0.]), torch.tensor([0, 1, 1, 0, 1, 0])):
        want = F.binary_cross_entropy_with_logits(logits.view(-1), y.float())
        assert torch.allclose(BCEWithLogitsFlat()(logits, y), want)
        assert torch.allclose(BCEFlat()(torch.sigmoid(logits), y), want, atol=1e-6)
    lf = BCEWithLogitsFlat(pos_weight=torch.tensor(2.))
    assert lf.floatify and not lf.is_2d and torch.equal(lf.func.pos_weight, torch.tensor(2.))


def test_flattened_loss_refuses_an_instance():
    with pytest.raises(TypeError, match=r'pass `CrossEntropyLoss` and its arguments'):
        FlattenedLoss(nn.CrossEntropyLoss())


def test_flattened_loss_pickles_and_copies():
    lf = CrossEntropyFlat(weight=torch.tensor([1., 2.]), axis=1)
    for other in (pickle.loads(pickle.dumps(lf)), copy.deepcopy(lf)):
        assert isinstance(other, FlattenedLoss) and other.axis == 1 and torch.equal(other.weight, lf.weight)


def test_label_smoothing_is_v1s_formula():
    set_seed(2)
    out, y = torch.randn(7, 5), torch.randint(0, 5, (7,))
    lp = F.log_softmax(out, -1)
    eps, c = 0.2, 5
    v1 = {'mean': -lp.sum(-1).mean() * eps / c + (1 - eps) * F.nll_loss(lp, y),
          'sum': -lp.sum() * eps / c + (1 - eps) * F.nll_loss(lp, y, reduction='sum'),
          'none': -lp.sum(-1) * eps / c + (1 - eps) * F.nll_loss(lp, y, reduction='none')}
    for red, want in v1.items():
        assert torch.allclose(LabelSmoothingCrossEntropy(eps, reduction=red)(out, y), want, atol=1e-6), red


# ---- layers

def test_flatten_full_and_not():
    x = torch.randn(3, 4, 5)
    assert Flatten()(x).shape == (3, 20) and Flatten(full=True)(x).shape == (60,)
    assert Flatten()(x.transpose(1, 2)).shape == (3, 20)  # non-contiguous input
    assert torch.equal(Flatten(full=True)(x), x.reshape(-1))


def test_sigmoid_range_bounds():
    x = torch.tensor([-1e4, -3., 0., 3., 1e4])
    y = SigmoidRange(1., 5.)(x)
    assert y.min() >= 1. and y.max() <= 5. and torch.allclose(y[[0, -1]], torch.tensor([1., 5.]))
    assert torch.allclose(y[2], torch.tensor(3.)) and torch.equal(y, sigmoid_range(x, 1., 5.))


def test_simple_cnn_shape_and_layers():
    m = simple_cnn((1, 8, 16, 10), kernel_szs=(5, 3, 3), strides=(2, 2, 1), bn=True)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert len(m) == 4 and m[0][0].kernel_size == (5, 5) and m[2][0].stride == (1, 1)
    assert isinstance(m[0][-1], nn.BatchNorm2d) and not isinstance(m[2][-1], nn.BatchNorm2d)  # never on the last
    assert m[2][0].bias is not None and m[0][0].bias is None  # a bias only without batchnorm
    with pytest.raises(ValueError, match='give 3 kernel sizes and 3 strides'):
        simple_cnn((1, 8, 16, 10), strides=(2, 2))


def test_conv_layer_options():
    assert [type(l) for l in conv_layer(3, 4, leaky=0.1)] == [nn.Conv2d, nn.LeakyReLU, nn.BatchNorm2d]
    t = conv_layer(4, 2, ks=2, stride=2, transpose=True, norm_type=None, use_activ=False)
    assert t(torch.randn(1, 4, 5, 5)).shape == (1, 2, 10, 10) and t[0].bias is not None
    sd = conv_layer(3, 4, norm_type=NormType.Spectral).state_dict()
    assert any('parametrizations.weight' in k for k in sd)


def test_res_block_starts_as_identity():
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.allclose(res_block(8).eval()(x), x)
        assert res_block(8, bottle=True)(x).shape == x.shape


def test_pixel_shuffle_icnr_starts_nearest_neighbour():
    with torch.no_grad():
        for norm in (NormType.Weight, NormType.Spectral, None):
            y = PixelShuffle_ICNR(4, 2, scale=2, norm_type=norm)(torch.randn(1, 4, 3, 3))
            assert y.shape == (1, 2, 6, 6)
            assert torch.allclose(y[..., ::2, ::2], y[..., 1::2, 1::2], atol=1e-6), norm


def test_debugger_stops_in_pdb(monkeypatch):
    calls = []
    monkeypatch.setattr(layers, 'set_trace', lambda: calls.append(1))
    x = torch.ones(2)
    assert Debugger()(x) is x and calls == [1]


# ---- training and export

def _regression_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(160, 3, generator=g)
    y = x @ torch.tensor([1., -2., 0.5]) + 1.  # (bs,) targets for (bs, 1) outputs
    return DataBunch.create(TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:]), bs=16, device='cpu')


def test_learner_trains_with_mse_loss_flat(tmp_path):
    set_seed(0)
    learn = Learner(_regression_data(), nn.Linear(3, 1), loss_func=MSELossFlat(), path=tmp_path, silent=True)
    learn.fit(6, lr=0.1)
    vl = learn.recorder.val_losses
    assert vl[-1] < 0.1 < vl[0], vl
    preds, targs, losses = learn.get_preds(with_loss=True)
    assert preds.shape == (32, 1) and losses.shape == (32,)
    assert torch.allclose(losses.mean(), torch.tensor(float(vl[-1])), atol=1e-4)


def test_export_load_learner_round_trip_with_flattened_loss(tmp_path):
    set_seed(0)
    learn = Learner(_regression_data(), nn.Linear(3, 1), loss_func=MSELossFlat(), path=tmp_path, silent=True)
    learn.fit(2, lr=0.1)
    learn.export()
    back = load_learner(tmp_path)  # a safe load: no trust_code
    assert isinstance(back.loss_func, FlattenedLoss) and isinstance(back.loss_func.func, nn.MSELoss)
    assert (back.loss_func.floatify, back.loss_func.is_2d, back.loss_func.axis) == (True, False, -1)
    xb, yb = next(iter(learn.data.valid_dl))
    with torch.no_grad():
        assert torch.allclose(back.loss_func(back.model(xb), yb), learn.loss_func(learn.model(xb), yb))


def test_export_keeps_a_cross_entropy_flat_weight(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=16, device='cpu')
    lf = CrossEntropyFlat(weight=torch.tensor([1., 2., 3.]))
    learn = Learner(data, nn.Linear(4, 3), loss_func=lf, path=tmp_path, silent=True)
    learn.fit(1, lr=0.01)
    learn.export('ce.pkl')
    back = load_learner(tmp_path, 'ce.pkl')
    assert torch.equal(back.loss_func.weight, torch.tensor([1., 2., 3.]))
    p = torch.softmax(learn.model(x[:5]), dim=1)
    assert torch.allclose(learn.pred_batch(batch=(x[:5], y[:5])), p, atol=1e-6)  # softmax, as for CrossEntropyLoss


def test_get_preds_softmax_follows_a_flattened_loss_axis():
    "As v1: predictions for `CrossEntropyFlat(axis=-1)` on (bs, seq, classes) outputs sum to 1 over the classes."
    from fastbook_core.basic_train import loss_func2activ
    out = torch.randn(4, 5, 3)
    probs = loss_func2activ(CrossEntropyFlat(axis=-1))(out)
    assert torch.allclose(probs.sum(-1), torch.ones(4, 5))
    assert torch.allclose(loss_func2activ(nn.CrossEntropyLoss())(out).sum(1), torch.ones(4, 3))  # torch's dim 1
