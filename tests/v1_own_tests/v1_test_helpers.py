"""What fastai v1's own tests import from v1's test helpers, for running them against fastbook_core.

v1's tests use `fastai.gen_doc.doctest.this_tests` (registers which API a test covers), `fastai.utils.text`'s
output capture and `fastai.utils.fakes` (a learner on random data built with v1's data block API, whose module
star-imported `fastai.basics`). These are fastbook_core's own versions with the same behaviour, written from v1's
documented facts: `fake_data` is a DataBunch of random items (inputs of `n_in` normal values, labels ints in
`[0, n_out)`), the first `valid_length` items for validation, `bs=batch_size`; its datasets keep `items` as v1's
ItemLists did. Everything `fastbook_core.basics` star-exports is in scope here, as `fastai.basics` was in fakes.
"""
import re as _re, sys as _sys
from io import StringIO as _StringIO
import numpy as _np
import torch as _torch
from torch.utils.data import Dataset as _Dataset
from fastbook_core.basics import *
from fastbook_core.basic_data import DataBunch as _DataBunch
from fastbook_core.basic_train import Learner as _Learner
# (this module's own imports are private: a test sees only what fastbook_core.basics gives and the helpers below)


def this_tests(*args):
    "v1 records which API each test covers (for its docs); nothing to record here."


def apply_print_resets(buf): return _re.sub(r'^.*\r', '', buf, 0, _re.M)


class CaptureStd:
    "Capture stdout and/or stderr in `.out` / `.err` (progress-bar carriage returns resolved, as v1's helper)."
    def __init__(self, out=True, err=True):
        self.out_buf = _StringIO() if out else None
        self.err_buf = _StringIO() if err else None
        self.out = self.err = 'not capturing'
    def __enter__(self):
        if self.out_buf is not None: self.out_old, _sys.stdout = _sys.stdout, self.out_buf
        if self.err_buf is not None: self.err_old, _sys.stderr = _sys.stderr, self.err_buf
        return self
    def __exit__(self, *exc):
        if self.out_buf is not None:
            _sys.stdout = self.out_old
            self.out = apply_print_resets(self.out_buf.getvalue())
        if self.err_buf is not None:
            _sys.stderr = self.err_old
            self.err = self.err_buf.getvalue()


class CaptureStdout(CaptureStd):
    def __init__(self): super().__init__(err=False)


class CaptureStderr(CaptureStd):
    def __init__(self): super().__init__(out=False)


def assert_screenout(out, what):
    assert what.lower() in apply_print_resets(out).lower(), f'expecting to find {what} in output: {out}'


class RandomItems(_Dataset):
    "Random inputs and labels; `items` as v1's ItemList had them (one entry per item)."
    def __init__(self, n, n_in, n_out):
        self.items = _np.zeros(n, dtype=_np.int64)
        self.x = _torch.randn(n, n_in)
        self.y = _torch.randint(0, n_out, (n,))
    def __len__(self): return len(self.items)
    def __getitem__(self, i): return self.x[i], self.y[i]


def fake_basedata(n_in: int = 5, batch_size: int = 5, train_length: int = None, valid_length: int = None):
    if train_length is None: train_length = 2 * batch_size
    if valid_length is None: valid_length = batch_size
    return _torch.empty([train_length + valid_length, n_in]).random_(-10, 10)


def fake_data(n_in: int = 5, n_out: int = 4, batch_size: int = 5, train_length: int = None, valid_length: int = None):
    if train_length is None: train_length = 2 * batch_size
    if valid_length is None: valid_length = batch_size
    return _DataBunch.create(RandomItems(train_length, n_in, n_out), RandomItems(valid_length, n_in, n_out),
                            bs=batch_size)


def fake_learner(n_in: int = 5, n_out: int = 4, batch_size: int = 5, train_length: int = None,
                 valid_length: int = None, layer_group_count: int = 1):
    data = fake_data(n_in=n_in, n_out=n_out, batch_size=batch_size, train_length=train_length,
                     valid_length=valid_length)
    layer_groups = [_torch.nn.Sequential(_torch.nn.Linear(n_in, n_in)) for _ in range(layer_group_count - 1)]
    layer_groups += [_torch.nn.Sequential(_torch.nn.Linear(n_in, n_out))]
    learner = _Learner(data, _torch.nn.Sequential(*layer_groups))
    learner.layer_groups = layer_groups
    return learner


def simple_cnn(actns, kernel_szs=None, strides=None, bn=False):
    """v1's `layers.simple_cnn` (fastai.basics, and so v1's fakes, gave it), which v1's torch_core tests use as a
    model: one conv block per pair of `actns` (conv, ReLU, then BatchNorm when `bn`, but not on the last block;
    the conv has no bias when a BatchNorm follows), kernel 3 and stride 2 by default, then average pool + flatten."""
    n = len(actns) - 1
    kernel_szs = kernel_szs or [3] * n
    strides = strides or [2] * n
    layers = []
    for i in range(n):
        norm = bn and i < n - 1
        block = [_torch.nn.Conv2d(actns[i], actns[i + 1], kernel_szs[i], stride=strides[i],
                                  padding=(kernel_szs[i] - 1) // 2, bias=not norm), _torch.nn.ReLU(inplace=True)]
        if norm: block.append(_torch.nn.BatchNorm2d(actns[i + 1]))
        layers.append(_torch.nn.Sequential(*block))
    layers.append(_torch.nn.Sequential(_torch.nn.AdaptiveAvgPool2d(1), _torch.nn.Flatten()))
    return _torch.nn.Sequential(*layers)


def torch_preload_mem():
    "v1's tests/utils/mem.py: load CUDA's context before a test measures GPU memory (nothing to load without CUDA)."
    if _torch.cuda.is_available(): _torch.ones((1, 1)).cuda()
