"The trackers (callbacks.tracker): min_delta decided once, resuming from a saved stage, state keys, v1's monitoring."
import warnings
import numpy as np
import pytest
import torch

from fastbook_core.metrics import accuracy
from fastbook_core.test_utils import classif_learner, synth_learner
from fastbook_core.callbacks.tracker import (EarlyStoppingCallback, ReduceLROnPlateauCallback, SaveModelCallback,
                                             TrackerCallback)


# ---------------------------------------------------------------- min_delta, in TrackerCallback only

@pytest.mark.parametrize('cls', [TrackerCallback, EarlyStoppingCallback, ReduceLROnPlateauCallback])
@pytest.mark.parametrize('min_delta', [0.1, -0.1])
def test_min_delta_is_a_distance_in_the_direction_of_mode(cls, min_delta):
    learn = classif_learner(metrics=[accuracy])
    low = cls(learn, monitor='valid_loss', min_delta=min_delta)  # minimised: must fall by more than 0.1
    low.best = 1.0
    assert [low.is_improvement(v) for v in (1.05, 1.0, 0.95, 0.85)] == [False, False, False, True]
    high = cls(learn, monitor='accuracy', min_delta=min_delta)  # maximised: must rise by more than 0.1
    high.best = 0.5
    assert [high.is_improvement(v) for v in (0.45, 0.5, 0.55, 0.65)] == [False, False, False, True]
    assert low.min_delta == high.min_delta == 0.1  # stored once, as given, never flipped by a subclass


def test_min_delta_zero_is_strict_improvement():
    learn = synth_learner()
    cb = TrackerCallback(learn, mode='max'); cb.best = 2.
    assert not cb.is_improvement(2.) and cb.is_improvement(2.0001)
    cb = TrackerCallback(learn, mode='min'); cb.best = 2.
    assert not cb.is_improvement(2.) and cb.is_improvement(1.9999)


def test_no_subclass_flips_min_delta():
    import inspect, fastbook_core.callbacks.tracker as tr
    for cls in (EarlyStoppingCallback, ReduceLROnPlateauCallback, SaveModelCallback):
        src = inspect.getsource(cls)
        assert 'min_delta *=' not in src and 'self.operator(' not in src, cls  # they all ask is_improvement


@pytest.mark.parametrize('mode,monitor', [('min', 'valid_loss'), ('max', 'accuracy')])
def test_early_stopping_with_a_large_min_delta_stops_after_patience(mode, monitor):
    "No epoch improves by 100: the first sets `best` (from inf), the next `patience + 1` do not, and the fit stops."
    learn = classif_learner(metrics=[accuracy])
    learn.fit(10, 1e-2, callbacks=[EarlyStoppingCallback(learn, monitor=monitor, mode=mode, min_delta=100., patience=1)])
    assert len(learn.recorder.val_losses) == 3


def test_reduce_lr_with_a_large_negative_min_delta_reduces_each_epoch():
    learn = synth_learner()
    learn.fit(4, lr=0.1, callbacks=[ReduceLROnPlateauCallback(learn, patience=0, min_delta=-10., min_lr=0.)])
    np.testing.assert_allclose(sorted(set(learn.recorder.lrs), reverse=True), [0.1, 0.02, 0.004], rtol=1e-6)  # the 3rd cut comes after the last epoch
