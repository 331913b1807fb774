"checkpoint's private helpers, tried directly (the chapter shows them through the public functions that use them)."
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fastbook_core.callback import Callback
from fastbook_core.checkpoint import _check_export_objects, _init_args, _not_plain, _plain, _trusted, _type_name
from fastbook_core.torch_core import AdamW, CheckpointError


def test_not_plain_finds_the_odd_value_and_type_name_names_it():
    assert _not_plain({'best': 0.5, 'seen': [1, 2]}) is None
    where, value = _not_plain({'best': 0.5, 'seen': [1, np.random.default_rng(0)]})
    assert (where, _type_name(value)) == ("['seen'][1]", 'a numpy.random.Generator')
    assert _type_name(3) == 'an int'


def test_trusted_names_only_torch_and_fastbook_core_objects():
    assert _trusted('torch.nn.modules.linear.Linear') is nn.Linear
    assert _trusted('torch.nn.functional.cross_entropy') is torch.nn.functional.cross_entropy
    assert _trusted('torch.optim.adamw.AdamW') is torch.optim.AdamW
    assert _trusted('functools.partial') is partial
    assert [_trusted(n) for n in ('os.system', '__main__.MyNet', 'builtins.eval', 'torch.nn.__main__.X')] == [None] * 4


class Every(Callback):
    def __init__(self, n: int, name: str = 'x'): self.n, self.name = n, name


class Derived(Callback):
    def __init__(self, name: str = 'x'): self.path = Path('models') / name


def test_init_args_keeps_plain_settings_and_refuses_the_others():
    assert _init_args(Every(np.int64(3), 'history')) == {'n': 3, 'name': 'history'}
    assert type(_init_args(Every(np.int64(3)))['n']) is int
    with pytest.raises(ValueError, match=r"has name='\.\./outside/log', which a safe load cannot read back"):
        _init_args(Every(3, '../outside/log'))
    assert _init_args(Derived()) == {}  # made again with the default, it is the same
    with pytest.raises(ValueError, match=r"does not keep its argument\(s\) name"): _init_args(Derived('mine'))


def test_plain_strings_are_simple_names_only():
    assert [_plain(v) for v in ('valid_loss', 'http://host:80', '/etc/passwd', 'x' * 65)] == [True, False, False, False]
    # trial 13 #3: a file name with a dot (`log.csv`, `best.v2`, `bk.1`) is a simple name; a name of dots only is not
    assert [_plain(v) for v in ('log.csv', 'best.v2', 'runs/bk.1', '.cache', '..', '...', 'a/../b', 'a:b')] == \
           [True, True, True, True, False, False, False, False]


def test_check_export_objects():
    good = {'callback_fns': [], 'callbacks': [], 'metrics': [], 'opt_func': AdamW}
    _check_export_objects(good, "model.pkl")
    with pytest.raises(CheckpointError, match='model.pkl is not a valid export: callback_fns holds'):
        _check_export_objects({**good, 'callback_fns': [nn.Linear]}, "model.pkl")
    with pytest.raises(CheckpointError, match='not an optimizer'):
        _check_export_objects({**good, 'opt_func': nn.Linear}, "model.pkl")
