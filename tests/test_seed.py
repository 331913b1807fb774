"The seed's walk-through, typed as written: DataBunch, model, Learner, metrics, fit_one_cycle, find_lr and the plots."
import warnings
from functools import partial
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basics import *
from fastbook_core.callbacks.one_cycle import OneCycleScheduler
from fastbook_core.datasets import digits_data


def test_walkthrough_as_written():
    set_seed(0)
    data = digits_data(bs=64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    learn = Learner(data, model)
    learn.metrics = [accuracy]
    learn.fit_one_cycle(3, 1e-2)
    assert learn.recorder.metrics[-1][0] > 0.9
    learn.find_lr()
    assert learn.recorder.plot(return_fig=True) is not None
    assert learn.recorder.plot_losses(return_fig=True) is not None
    fig = learn.plot_lr(show_moms=True, return_fig=True)
    assert len(fig.axes) == 2
    learn.fit_one_cycle(2, 1e-2)
    assert learn.recorder.plot_metrics(return_fig=True) is not None
    assert learn.recorder.plot_lr(return_fig=True) is not None


def test_find_lr_is_lr_find():
    assert Learner.find_lr is Learner.lr_find


def test_plot_metrics_needs_two_epochs():
    learn = Learner(digits_data(), nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), metrics=[accuracy], silent=True)
    learn.fit(1)
    with pytest.warns(UserWarning, match='collected once per epoch .* at least two epochs'):
        assert learn.recorder.plot_metrics() is None


def test_single_callback_and_callback_fns_partial():
    learn = Learner(digits_data(), nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), silent=True,
                    callback_fns=[partial(OneCycleScheduler, lr_max=1e-2)])
    learn.fit(2)
    assert learn.recorder.lrs[0] == pytest.approx(1e-2 / 25)
    cb = OneCycleScheduler(learn, lr_max=3e-3)
    learn.callback_fns = learn.callback_fns[:1]
    learn.fit(1, callbacks=cb)
    assert learn.recorder.lrs[0] == pytest.approx(3e-3 / 25)
