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


# ---------------------------------------------------------------- resuming from a stage (issue 26.2)

def _stage_fit(learn, n, lr):
    learn.fit(n, lr, callbacks=[SaveModelCallback(learn), EarlyStoppingCallback(learn, patience=5)])
    return list(learn.recorder.val_losses)

def test_fit_save_stage_load_with_opt_fit_again():
    learn = synth_learner()
    first = _stage_fit(learn, 3, 0.1)
    learn.save('stage-1')
    learn.load('stage-1', with_opt=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the fit starts at epoch 0 after a stage of 3 epochs: meant
        second = _stage_fit(learn, 2, 0.1)
    assert len(second) == 2
    # the run went on: the Learner ends with the best model of both stages
    np.testing.assert_allclose(learn.validate()[0], min(first + second), rtol=1e-5)

def test_a_new_stage_starts_its_best_afresh_and_a_fit_that_goes_on_keeps_it():
    """A fit from epoch 0 after a stage is a new stage (it may measure otherwise): its best starts afresh, as in v1; a fit
    that goes on with the run (TrackEpochCallback's epoch_offset at the epochs done) takes the stage's best back."""
    from fastbook_core.callbacks.tracker import TrackEpochCallback
    for goes_on in (False, True):
        learn = synth_learner()
        first = _stage_fit(learn, 3, 0.1)
        learn.save('stage-1')
        learn.load('stage-1', with_opt=True)
        with torch.no_grad():
            for p in learn.model.parameters(): p.add_(3.)  # far from the best: the next fit (at lr 0) stays worse
        cb = SaveModelCallback(learn)
        extra = [TrackEpochCallback(learn, epoch_offset=3)] if goes_on else []
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            learn.fit(4 if goes_on else 1, 0., callbacks=[cb] + extra)
        worse = learn.recorder.val_losses[-1]
        assert worse > min(first)
        if goes_on:  # the run's best, and its model loaded back
            assert cb.best == pytest.approx(min(first))
            np.testing.assert_allclose(learn.validate()[0], min(first), rtol=1e-5)
        else:  # this stage's own best: its one epoch
            assert cb.best == pytest.approx(worse)
            np.testing.assert_allclose(learn.validate()[0], worse, rtol=1e-5)

def test_stage_from_an_earlier_version_with_run_none_loads():
    learn = synth_learner()
    cb = SaveModelCallback(learn)
    cb.load_checkpoint_state({'best': 0.5, 'run': None})
    assert cb.best == 0.5 and cb.run is None
    with pytest.raises(ValueError, match="run=3 is not a run"): cb.load_checkpoint_state({'best': 0.5, 'run': 3})


# ---------------------------------------------------------------- state keys (issue 26.3)

def test_state_keys_tell_trackers_apart():
    learn = classif_learner(metrics=[accuracy])
    assert SaveModelCallback(learn).state_key == 'SaveModelCallback[monitor=valid_loss,name=bestmodel]'
    assert SaveModelCallback(learn, monitor='accuracy', name='acc').state_key == 'SaveModelCallback[monitor=accuracy,name=acc]'
    assert EarlyStoppingCallback(learn).state_key == 'EarlyStoppingCallback[monitor=valid_loss]'
    assert ReduceLROnPlateauCallback(learn, monitor='accuracy').state_key == 'ReduceLROnPlateauCallback[monitor=accuracy]'
    assert TrackerCallback(learn).state_key == 'TrackerCallback[monitor=valid_loss]'

from fastbook_core.callback import Callback
@pytest.mark.skipif(not hasattr(Callback, 'state_key'),
                    reason='Learner.save/load match states by Callback.state_key from 03 (issue 26.3): checked after merge')
def test_two_save_model_callbacks_in_another_order_get_their_own_states():
    learn = classif_learner(metrics=[accuracy])
    cbs = lambda l: [SaveModelCallback(l, monitor='valid_loss', name='by_loss'),
                     SaveModelCallback(l, monitor='accuracy', name='by_acc')]
    first = cbs(learn)
    learn.fit(2, 1e-2, callbacks=first)
    learn.save('stage')
    learn.load('stage', with_opt=True)
    second = cbs(learn)[::-1]  # the other order
    from fastbook_core.callbacks.tracker import TrackEpochCallback
    seen = {}
    class Peek(Callback):
        _order = 10**9 + 1  # after the states came back
        def on_train_begin(self, **kwargs): seen.update({cb.name: cb.best for cb in second})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(3, 1e-2, callbacks=second + [Peek(), TrackEpochCallback(learn, epoch_offset=2)])  # going on with the run
    assert seen == {'by_loss': first[0].best, 'by_acc': first[1].best}


# ---------------------------------------------------------------- v1's monitoring (issue 27.4)

@pytest.mark.parametrize('cls', [EarlyStoppingCallback, SaveModelCallback, ReduceLROnPlateauCallback])
@pytest.mark.parametrize('monitor', ['val_loss', 'acc'])
def test_unrecorded_monitor_warns_and_the_fit_goes_on(cls, monitor, tmp_path):
    learn = classif_learner(metrics=[accuracy])
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.warns(UserWarning, match=rf"monitors '{monitor}', which is not recorded\. Recorded: train_loss, "
                                         r"valid_loss, accuracy\. It makes no decision in this fit"):
        learn.fit(3, 1e-2, callbacks=[cls(learn, monitor=monitor, patience=0) if cls is not SaveModelCallback
                                      else cls(learn, monitor=monitor)])
    assert len(learn.recorder.val_losses) == 3  # no early stop
    assert len(set(learn.recorder.lrs)) == 1    # no lr reduction
    assert not (learn.path / learn.model_dir / 'bestmodel.pth').exists()  # no save
    assert not all(map(lambda a, b: a.equal(b), w0, learn.model.parameters()))  # it trained


@pytest.mark.parametrize('cls', [EarlyStoppingCallback, SaveModelCallback, ReduceLROnPlateauCallback])
def test_no_validation_set_warns_and_the_fit_goes_on(cls):
    learn = synth_learner(n_valid=0)
    with pytest.warns(UserWarning, match="needs a validation set, and this DataBunch has none"):
        learn.fit(2, callbacks=[cls(learn)])
    assert len(learn.recorder.losses) == 2 * len(learn.data.train_dl)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # train_loss needs no validation set: no warning
        learn.fit(1, callbacks=[cls(learn, monitor='train_loss')])


@pytest.mark.parametrize('cls', [TrackerCallback, EarlyStoppingCallback, SaveModelCallback, ReduceLROnPlateauCallback])
def test_unknown_mode_warns_and_falls_back_to_auto(cls):
    learn = classif_learner(metrics=[accuracy])
    with pytest.warns(UserWarning, match=r"mode='maximise' is not a mode .*falling back to 'auto'"):
        cb = cls(learn, monitor='accuracy', mode='maximise')
    assert cb.mode == 'auto' and cb.operator is np.greater
    with pytest.warns(UserWarning, match="falling back to 'auto'"):
        assert cls(learn, monitor='valid_loss', mode=None).operator is np.less


def test_save_model_callback_reused_never_loads_a_stale_file():
    "A SaveModelCallback reused in a fit that fails before its on_train_begin loads nothing at that fit's end."
    from fastbook_core.callback import Callback
    class FailEarly(Callback):
        _order = -100
        def on_train_begin(self, **kwargs): raise ValueError('refused')
    learn = synth_learner(); smc = SaveModelCallback(learn)
    learn.fit(2, 0.5, callbacks=[smc])  # writes bestmodel.pth
    learn.fit(2, 0.05)                  # other weights, not saved
    w = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match='refused'): learn.fit(1, callbacks=[FailEarly(), smc])
    assert all(torch.equal(a, b.detach()) for a, b in zip(w, learn.model.parameters()))


def test_stage_loaded_into_a_new_learner():
    "The round-trip helper's repro of issue 26.2: the stage goes into another Learner, which fits on."
    learn = classif_learner()
    learn.fit(1, callbacks=[SaveModelCallback(learn)])
    p = learn.save('s', return_path=True)
    new = classif_learner()
    new.load(p, with_opt=True)
    cb = SaveModelCallback(new)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        new.fit(1, callbacks=[cb])
    assert len(new.recorder.val_losses) == 1 and cb.best <= learn.recorder.val_losses[-1]


def test_two_save_model_callbacks_writing_one_file_are_refused_before_training():
    "Two monitors, one file: each would load the other's best model, so the fit is refused before it trains."
    from fastbook_core.test_utils import classif_learner
    from fastbook_core.metrics import accuracy
    learn = classif_learner(metrics=[accuracy])
    with pytest.raises(ValueError, match=r"Two SaveModelCallbacks of this fit write 'b2' .*give each its own `name`"):
        learn.fit(2, 1e-2, callbacks=[SaveModelCallback(learn, name='b2'),
                                      SaveModelCallback(learn, monitor='accuracy', mode='min', name='b2')])
    assert getattr(learn, 'recorder', None) is None or not learn.recorder.losses  # nothing trained


# ---------------------------------------------------------------- issue 26 review: saves_checkpoints, names, stages

def test_save_model_callback_says_it_saves_checkpoints():
    "The contract with Learner.fit: a callback that writes checkpoints during a fit says so, as a class attribute."
    assert SaveModelCallback.saves_checkpoints is True
    assert SaveModelCallback(synth_learner()).saves_checkpoints is True


@pytest.mark.parametrize('name', ['best.pth', 'best.pt', 'best'])
def test_save_model_callback_name_with_a_suffix_loads_the_runs_best_after_a_resumed_stage(name, tmp_path):
    "B4: the file looked up at the end is the one `learn.save(name)` wrote, `.pth` added only when the name has no suffix."
    learn = synth_learner(); learn.path = tmp_path
    learn.fit(3, 0.1, callbacks=[SaveModelCallback(learn, name=name)])
    best = learn.validate()[0]
    learn.save('stage')
    learn.load('stage', with_opt=True)
    from fastbook_core.callbacks.tracker import TrackEpochCallback
    learn.fit(4, 3.0, callbacks=[SaveModelCallback(learn, name=name), TrackEpochCallback(learn, epoch_offset=3)])  # the run goes on, at a huge lr: worse, nothing saved
    assert learn.validate()[0] == pytest.approx(best)  # the run's best, loaded back from the file the first part wrote
    expected = name if name.endswith(('.pth', '.pt')) else f'{name}.pth'
    assert sorted(p.name for p in (tmp_path / 'models').iterdir() if p.name != 'epoch') == sorted([expected, 'stage.pth'])


def test_two_save_model_callbacks_on_one_file_spelled_two_ways_are_refused():
    learn = synth_learner()
    with pytest.raises(ValueError, match='give each its own `name`'):
        learn.fit(1, callbacks=[SaveModelCallback(learn, name='b'), SaveModelCallback(learn, monitor='train_loss', name='b.pth')])


def _rlrop(learn): return ReduceLROnPlateauCallback(learn, patience=0, min_delta=10., min_lr=1e-6)


def test_reduce_lr_on_plateau_a_completed_stage_does_not_divide_the_next_fits_lr(tmp_path):
    "B7: after a fit that ended, no reductions are saved; the next fit trains at the lr it asks for, as in the same Learner."
    learn = synth_learner(); learn.path = tmp_path
    learn.callbacks.append(_rlrop(learn))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(3, 0.1)  # two reductions
    assert learn.callbacks[-1].reductions == 2 and learn.callbacks[-1].checkpoint_state()['reductions'] == 0
    learn.save('s')
    st = torch.load(tmp_path / 'models' / 's.pth', weights_only=True)['callbacks']['ReduceLROnPlateauCallback[monitor=valid_loss]']
    assert st['reductions'] == 0 and st['best'] == learn.callbacks[-1].best  # the stage's best goes on, its lr does not
    new = synth_learner(); new.path = tmp_path
    new.callbacks.append(_rlrop(new))
    new.load('s', with_opt=True)
    new.fit(1, 0.1)
    learn.fit(1, 0.1)  # the same Learner, without the save and load
    assert new.recorder.lrs == pytest.approx([0.1] * len(new.recorder.lrs))  # the lr asked for (not 0.1 * 0.2**2)
    assert learn.recorder.lrs == pytest.approx(new.recorder.lrs)


def test_reduce_lr_on_plateau_an_interrupted_run_resumes_at_its_reduced_lr(tmp_path):
    "B7, the other case: a checkpoint written during the fit holds the reductions, and the resumed fit goes on exactly."
    from fastbook_core.callback import Callback
    class Cut(Callback):
        def on_epoch_begin(self, epoch, **kwargs):
            if epoch == 3: raise RuntimeError('cut')
    mk = lambda L: [_rlrop(L), SaveModelCallback(L, every='epoch', name='e')]
    whole = synth_learner(); whole.path = tmp_path / 'whole'
    whole.fit(6, 0.1, callbacks=mk(whole))
    part = synth_learner(); part.path = tmp_path / 'part'
    with pytest.raises(RuntimeError, match='cut'): part.fit(6, 0.1, callbacks=mk(part) + [Cut()])
    resumed = synth_learner(); resumed.path = part.path
    resumed.load('e_2', with_opt=True)
    from fastbook_core.callbacks.tracker import TrackEpochCallback
    resumed.fit(6, 0.1, callbacks=mk(resumed) + [TrackEpochCallback(resumed, epoch_offset=3)])  # where the run stopped
    n = len(whole.recorder.lrs) // 2  # the batches of the 3 epochs before the resume
    assert resumed.recorder.lrs[n] == pytest.approx(0.1 * 0.2 ** 2)  # where the interrupted run was
    assert resumed.recorder.lrs[-n:] == pytest.approx(whole.recorder.lrs[n:])
    assert resumed.recorder.val_losses[-3:] == pytest.approx(whole.recorder.val_losses[3:])
