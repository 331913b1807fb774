"Conformance with fastai v1's documentation of `torch_core` (docs_src/torch_core.ipynb): its names, examples and behaviour."
import json, random, warnings
from functools import partial
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
import fastbook_core.torch_core as tc
from fastbook_core.torch_core import *

SURFACE = json.loads((Path(__file__).parent.parent / 'nbs' / 'v1_surface.json').read_text())


def simple_cnn(bn=False):
    "The shape of v1's `simple_cnn([3, 6, 12])`: two conv blocks (with BatchNorm if `bn`), then pooling."
    block = lambda ni, nf: nn.Sequential(*([nn.Conv2d(ni, nf, 3, 2, 1), nn.ReLU()] + ([nn.BatchNorm2d(nf)] if bn else [])))
    return nn.Sequential(block(3, 6), block(6, 12), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))


@pytest.mark.parametrize('name', SURFACE['modules']['torch_core']['names'])
def test_every_documented_name_exists(name):
    obj = tc
    for part in name.split('.'): obj = getattr(obj, part)
    assert callable(obj) or isinstance(obj, type), name


def test_constants():
    assert bn_types == (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    assert no_wd_types == bn_types + (nn.LayerNorm,)
    assert nn.Linear in bias_types and nn.ConvTranspose2d in bias_types
    assert defaults.device.type in ('cpu', 'cuda')


def test_flatten_model_docs_example():
    assert [type(l) for l in flatten_model(simple_cnn())] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU,
                                                               nn.AdaptiveAvgPool2d, nn.Flatten]


def test_flatten_model_keeps_lone_parameters():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.w = nn.Linear(2, 2), nn.Parameter(torch.ones(2))
    m = M()
    layers = flatten_model(m)
    assert [type(l) for l in layers] == [nn.Linear, ParameterModule]
    assert layers[1].val is m.w
    assert children_and_parameters(m)[0] is m.lin
    x = torch.randn(3)
    assert torch.equal(ParameterModule(m.w)(x), x)  # an identity layer


def test_model2half_docs_example():
    m_half = model2half(simple_cnn(bn=True))
    dtypes = {k: v.dtype for k, v in m_half.state_dict().items() if v.is_floating_point()}
    assert dtypes['0.0.weight'] == torch.float16 and dtypes['0.0.bias'] == torch.float16
    assert all(dtypes[f'0.2.{k}'] == torch.float32 for k in ('weight', 'bias', 'running_mean', 'running_var'))
    assert bn2float(nn.BatchNorm1d(2).half()).weight.dtype == torch.float32


def test_np2model_tensor_docs_example():
    for t in (np.float16, np.float32, np.float64):
        assert np2model_tensor(np.ones((2, 3)).astype(t)).dtype == torch.float32
    for t in (np.int8, np.int32, np.uint8):
        assert np2model_tensor(np.ones(2, dtype=t)).dtype == torch.int64
    assert model_type(np.bool_) is None and model_type(np.float16) is torch.float32


def test_requires_grad_docs_example():
    m = simple_cnn(bn=True)
    assert requires_grad(m) is True
    requires_grad(m, False)
    assert requires_grad(m) is False and trainable_params(m) == []
    assert requires_grad(nn.ReLU()) is None


def test_tensor_docs_example():
    for t in (tensor(np.array([1, 2, 3])), tensor(1, 2, 3), tensor([1, 2, 3])):
        assert isinstance(t, torch.Tensor) and t.tolist() == [1, 2, 3]
    assert tensor([1, 2], [3, 4]).tolist() == [[1, 2], [3, 4]]
    with pytest.warns(UserWarning, match='int32'):
        assert tensor(np.array([1], dtype=np.int32)).dtype == torch.int64


def test_to_cpu_makes_no_copy_on_cpu():
    b = [torch.randn(1, 1) for _ in range(3)]
    assert all(x is y for x, y in zip(to_cpu(b), b))


def test_to_half_and_to_float_docs_example():
    dtypes = [torch.int64, torch.int32, torch.int16, torch.float64, torch.float32, torch.float16]
    out = to_half([torch.tensor([1, 2], dtype=d) for d in dtypes])
    assert [t.dtype for t in out] == dtypes[:3] + [torch.float16] * 3
    assert [t.dtype for t in to_float(out)] == dtypes[:3] + [torch.float32] * 3
    x, y = batch_to_half([torch.ones(2), torch.tensor([0, 1])])
    assert (x.dtype, y.dtype) == (torch.float16, torch.int64)


def test_to_np_docs_example():
    a = to_np(torch.tensor([1, 2], dtype=torch.float64))
    assert isinstance(a, np.ndarray) and a.tolist() == [1., 2.]


def test_try_int_docs_example():
    assert try_int(12.5) == 12 and type(try_int(12.5)) is int
    assert try_int(np.array([1.5])).dtype == np.float64      # a rank-1 array is not converted
    assert try_int(np.array(1.5)) == 1 and type(try_int(np.array(1.5))) is int
    assert try_int(torch.tensor(2.5)) == 2 and type(try_int(torch.tensor(2.5))) is int
    assert try_int('12.5') == '12.5'


def test_random_helpers_docs_examples():
    set_seed(0)
    lu = log_uniform(0.5, 2, (8,))
    assert lu.shape == (8,) and ((lu >= 0.5) & (lu <= 2)).all()
    assert rand_bool(0.5, 8).dtype == torch.bool
    u = uniform(0, 1, (8,))
    assert u.shape == (8,) and ((u >= 0) & (u < 1)).all()
    ui = uniform_int(0, 2, (1000,))
    assert set(ui.tolist()) == {0, 1, 2}
    assert 0 <= uniform(0, 1) < 1 and isinstance(rand_bool(0.5), bool) and uniform_int(3, 3) == 3
    assert 0.5 <= log_uniform(0.5, 2) <= 2


def test_module_needs_no_super_init_docs_example():
    class _T(Module):
        def __init__(self): self.f = nn.Linear(2, 1)
        def forward(self, x): return self.f(x)
    t = _T()
    assert t(tensor(1., 2)).shape == (1,)
    assert len(list(t.parameters())) == 2


def test_init_functions():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    nn.init.constant_(m[1].weight, 2.)
    apply_init(m, nn.init.ones_)
    assert torch.equal(m[0].weight.detach(), torch.ones(3, 2)) and torch.equal(m[0].bias.detach(), torch.zeros(3))
    assert torch.equal(m[1].weight.detach(), torch.full((3,), 2.))  # BatchNorm untouched
    seen = []
    apply_leaf(m, lambda l: seen.append(type(l)))
    assert seen == [nn.Sequential, nn.Linear, nn.BatchNorm1d, nn.Linear]
    l = nn.Linear(2, 2)
    assert init_default(l, None) is l
    cond_init(nn.BatchNorm1d(2), nn.init.zeros_)  # no error, nothing done


def test_in_channels():
    assert in_channels(simple_cnn()) == 3
    assert in_channels(nn.Sequential(nn.Conv2d(8, 4, 3, groups=4))) == 8
    with pytest.raises(Exception, match='No layer with a weight'): in_channels(nn.Sequential(nn.ReLU()))


def test_model_information():
    m = simple_cnn()
    assert isinstance(first_layer(m), nn.Conv2d) and isinstance(last_layer(m), nn.Flatten)
    assert list(range_children(m)) == [0, 1, 2] and num_children(m) == 3 and children(m)[0] is m[0]
    assert one_param(m) is m[0][0].weight and has_params(m) and not has_params(nn.ReLU())
    assert get_model(nn.DataParallel(m)) is m


def test_split_model_and_no_wd_params():
    m = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.LayerNorm(4), nn.Linear(4, 1))
    groups, idxs = split_model(m, [m[2]], want_idxs=True)
    assert idxs == [2] and [len(g) for g in groups] == [2, 2]
    assert [len(g) for g in split_model_idx(m, [1, 3])] == [1, 2, 1]
    assert [len(g) for g in split_model(m, [[m[0]], [m[1], m[2], m[3]]])] == [1, 3]
    wd, no_wd = split_no_wd_params([m])
    assert {id(p) for p in wd} == {id(m[0].weight), id(m[3].weight)}
    assert len(no_wd) == 6  # both biases, BatchNorm and LayerNorm weight and bias


def test_set_bn_eval_recurses():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2)), nn.BatchNorm1d(2))
    requires_grad(m[1], False)
    set_bn_eval(m)
    assert (m[1][0].training, m[2].training) == (False, True)
    import fastbook_core.callbacks.misc as misc
    assert misc.set_bn_eval is set_bn_eval


def test_none_reduce_on_cpu():
    w = torch.tensor([1., 2.])
    loss = nn.CrossEntropyLoss(weight=w)
    out, targ = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    with NoneReduceOnCPU(loss) as lf:
        assert lf(out, targ).shape == (4,)
    assert loss.reduction == 'mean' and loss.weight is not None
    with NoneReduceOnCPU(F.mse_loss) as lf:
        assert lf(torch.zeros(3), torch.ones(3)).shape == (3,)
    m = nn.Linear(2, 2)
    with ModelOnCPU(m) as mc: assert one_param(mc).device.type == 'cpu'


def test_small_helpers():
    assert trange_of([7, 8, 9]).tolist() == [0, 1, 2]
    a = np.arange(4.)
    assert np_address(a) == np_address(a[:]) and np_address(a[1:]) == np_address(a) + 8
    x = torch.tensor([0., 0.25, 1.])
    assert torch.allclose(torch.sigmoid(logit(x)), x.clamp(1e-7, 1 - 1e-7))
    y = x.clone(); logit_(y)
    assert torch.allclose(y, logit(x))
    assert grab_idx([torch.arange(6).view(3, 2), torch.arange(3)], 2)[0].tolist() == [4, 5]
    out, targ = flatten_check(torch.ones(2, 3), torch.ones(6, 1))
    assert out.shape == targ.shape == (6,)
    with pytest.raises(AssertionError, match='same number of elements but got 2 and 3'):
        flatten_check(torch.ones(2), torch.ones(3))
    batch = data_collate([(torch.ones(2), 0), (torch.zeros(2), 1)])
    assert batch[0].shape == (2, 2) and batch[1].tolist() == [0, 1]
    class Item:
        def __init__(self, data): self.data = data
    assert to_data([Item(3), torch.ones(1)])[0] == 3


def test_to_detach_and_to_device():
    t = torch.ones(2, requires_grad=True) * 2
    d = to_detach({'a': [t]}, cpu=False)
    assert not d['a'][0].requires_grad
    assert to_device((t,), 'cpu')[0].device.type == 'cpu'
