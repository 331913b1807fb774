"""The trackers under faults and bad input (issue 26, review 5 #6, #8, #13, #14): TrackEpochCallback says where a fit
starts and refuses a file it cannot trust; a NaN monitor is said once; an interrupted fit's warning comes from rank 0."""
import warnings
from pathlib import Path
import numpy as np
import pytest
import torch

import fastbook_core.callbacks.tracker as tracker
from fastbook_core.basic_train import load_learner
from fastbook_core.callback import Callback
from fastbook_core.test_utils import synth_learner
from fastbook_core.callbacks.tracker import (EarlyStoppingCallback, ReduceLROnPlateauCallback, SaveModelCallback,
                                             TrackEpochCallback, TrackerCallback)


class StopAt(Callback):
    "Stop the fit at the end of epoch `epoch`, as a user's Ctrl-C between epochs would leave it."
    def __init__(self, epoch): self.epoch = epoch
    def on_epoch_end(self, epoch, **kwargs):
        if epoch == self.epoch: return {'stop_training': True}


def _epoch_file(learn, name='epoch') -> Path: return learn.path / learn.model_dir / name


def _no_warnings(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        fn()
    assert not w, [str(x.message) for x in w]


# ---------------------------------------------------------------- TrackEpochCallback says what it does (#6)

def test_without_a_file_it_says_the_fit_starts_at_epoch_0(capsys):
    learn = synth_learner()
    _no_warnings(lambda: learn.fit(2, callbacks=[TrackEpochCallback(learn)]))
    out = capsys.readouterr().out
    assert f"TrackEpochCallback: no {_epoch_file(learn)} yet: this fit starts at epoch 0" in out, out
    assert _epoch_file(learn).read_text() == '1'


def test_from_its_file_it_says_where_the_fit_starts(capsys):
    learn = synth_learner()
    learn.fit(5, callbacks=[TrackEpochCallback(learn), StopAt(1)])
    capsys.readouterr()
    _no_warnings(lambda: learn.fit(4, callbacks=[TrackEpochCallback(learn)]))  # the same Learner: its trained weights
    out = capsys.readouterr().out
    assert f"{_epoch_file(learn)} says epoch 1 was the last completed: this fit starts at epoch 2." in out, out
    assert [r[0] for r in learn.recorder.rows] == ['2', '3']


def test_with_epoch_offset_it_says_so(capsys):
    learn = synth_learner()
    learn.fit(1)
    learn.fit(3, callbacks=[TrackEpochCallback(learn, epoch_offset=1)])
    assert "TrackEpochCallback: epoch_offset=1: this fit starts at epoch 1." in capsys.readouterr().out
    assert [r[0] for r in learn.recorder.rows] == ['1', '2']


def test_fresh_weights_with_an_epoch_file_warn_that_epochs_are_skipped():
    "A new Learner (the notebook restarted) and the file of an earlier run: v1 went on silently from untrained weights."
    first = synth_learner()
    first.fit(5, callbacks=[TrackEpochCallback(first), StopAt(1)])
    fresh = synth_learner(seed=3); fresh.path = first.path
    cb = TrackEpochCallback(fresh)
    with pytest.warns(UserWarning, match=r"this fit starts at epoch 2, with weights this Learner had not trained") as w:
        fresh.fit(4, callbacks=[cb])
    msg = str(w[0].message)
    assert "epochs 0 to 1 are skipped, not done" in msg and f"Path('{_epoch_file(first)}').unlink()" in msg, msg
    assert "SaveModelCallback(learn, every='epoch')" in msg and 'TrackEpochCallback(learn).restart()' in msg
    assert [r[0] for r in fresh.recorder.rows] == ['2', '3']  # v1's semantics kept: the fit does start at epoch 2


def test_fresh_weights_loaded_by_save_model_every_epoch_do_not_warn():
    first = synth_learner()
    first.fit(5, callbacks=[TrackEpochCallback(first), SaveModelCallback(first, every='epoch', name='ck'), StopAt(1)])
    saved = {k: v.clone() for k, v in first.model.state_dict().items()}
    fresh = synth_learner(seed=3); fresh.path = first.path

    class Weights(Callback):  # the weights the first batch of the resumed fit starts from
        _order = 99
        def on_epoch_begin(self, **kwargs):
            if not hasattr(self, 'w'): self.w = {k: v.clone() for k, v in fresh.model.state_dict().items()}
    seen = Weights()
    _no_warnings(lambda: fresh.fit(3, callbacks=[TrackEpochCallback(fresh), SaveModelCallback(fresh, every='epoch', name='ck'), seen]))
    for k, v in saved.items(): assert torch.equal(seen.w[k], v), k


def test_a_learner_that_loaded_its_weights_does_not_warn():
    first = synth_learner()
    first.fit(5, callbacks=[TrackEpochCallback(first), StopAt(1)])
    first.save('after-1')
    again = synth_learner(seed=3); again.path = first.path
    again.load('after-1')  # the file holds the optimizer state: the Learner has one now
    _no_warnings(lambda: again.fit(3, callbacks=[TrackEpochCallback(again)]))


def test_only_rank_0_speaks(capsys, monkeypatch):
    learn = synth_learner()
    monkeypatch.setattr(tracker, 'rank_distrib', lambda: 1)
    learn.fit(1, callbacks=[TrackEpochCallback(learn)])
    assert 'TrackEpochCallback' not in capsys.readouterr().out


# ---------------------------------------------------------------- a file that leaves no epoch: named, with its fix (#13)

def test_a_leftover_file_is_refused_with_the_file_and_the_fix():
    learn = synth_learner()
    learn.fit(3, callbacks=[TrackEpochCallback(learn)])  # epochs 0-2 done
    f = _epoch_file(learn)
    with pytest.raises(ValueError) as e: learn.fit(3, callbacks=[TrackEpochCallback(learn)])
    msg = str(e.value)
    assert msg.startswith(f"TrackEpochCallback: {f} says epoch 2 was the last completed, so this fit would start at epoch 3, "
                          "and leaves none of its 3 epochs to run"), msg
    assert 'give fit its total number of epochs, more than 3' in msg and '`TrackEpochCallback(learn).restart()`' in msg
    assert f"`Path('{f}').unlink()`" in msg
    TrackEpochCallback(learn).restart()  # the fix, as the message writes it
    learn.fit(3, callbacks=[TrackEpochCallback(learn)])
    assert [r[0] for r in learn.recorder.rows] == ['0', '1', '2']


def test_the_fix_names_a_file_of_another_name_and_restart_on_the_same_callback_works():
    learn = synth_learner()
    cb = TrackEpochCallback(learn, name='ep')
    learn.fit(2, callbacks=[cb])
    cb = TrackEpochCallback(learn, name='ep')
    with pytest.raises(ValueError, match=r"`TrackEpochCallback\(learn, name='ep'\)\.restart\(\)`"): learn.fit(2, callbacks=[cb])
    cb.restart()
    learn.fit(2, callbacks=[cb])
    assert [r[0] for r in learn.recorder.rows] == ['0', '1']


def test_an_epoch_offset_that_leaves_no_epoch_names_itself():
    learn = synth_learner()
    with pytest.raises(ValueError, match=r"epoch_offset=3, so this fit would start at epoch 3, and leaves none of its 3 epochs.*"
                                         r"give a smaller epoch_offset"):
        learn.fit(3, callbacks=[TrackEpochCallback(learn, epoch_offset=3)])
    assert not _epoch_file(learn).exists()


# ---------------------------------------------------------------- a tampered file is refused (#14)

@pytest.mark.parametrize('text,why', [('abc', 'not the number of an epoch'), ('-5', 'not the number of an epoch'),
                                      ('1.5', 'not the number of an epoch'), ('', 'not the number of an epoch'),
                                      ('+2', 'not the number of an epoch'), ('\x00\x07', 'not the number of an epoch'),
                                      ('99999999999', 'more epochs than a run has')])
def test_a_tampered_epoch_file_is_refused_before_the_first_epoch(text, why):
    learn = synth_learner()
    f = _epoch_file(learn); f.parent.mkdir(parents=True, exist_ok=True); f.write_text(text)
    cb = TrackEpochCallback(learn)  # making it never fails: a Learner loaded for inference makes one too
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ValueError) as e: learn.fit(3, callbacks=[cb])
    msg = str(e.value)
    assert msg.startswith(f"TrackEpochCallback: {f} holds {text[:40]!r}, {why} (a damaged or edited file?)"), msg
    assert 'TrackEpochCallback(learn).restart()' in msg and 'TrackEpochCallback(learn, epoch_offset=N)' in msg
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, before[k]), k  # nothing trained
    assert f.read_text() == text  # nor the file replaced
    cb.restart()
    learn.fit(2, callbacks=[cb])
    assert f.read_text() == '1'


def test_a_hand_written_epoch_with_a_newline_is_read():
    learn = synth_learner()
    f = _epoch_file(learn); f.parent.mkdir(parents=True, exist_ok=True); f.write_text('1\n')  # `echo 1 > models/epoch`
    learn.fit(1)
    learn.fit(4, callbacks=[TrackEpochCallback(learn)])
    assert learn.recorder.rows[0][0] == '2'


def test_a_folder_where_the_file_goes_is_refused():
    learn = synth_learner()
    _epoch_file(learn).mkdir(parents=True)
    with pytest.raises(ValueError, match="is a folder: give the file of the epoch another `name`"):
        learn.fit(1, callbacks=[TrackEpochCallback(learn)])


@pytest.mark.parametrize('bad', ['2', -1, 1.5, True, np.float32(2.)])
def test_a_bad_epoch_offset_is_refused(bad):
    with pytest.raises(ValueError, match=r"epoch_offset=.*: give the epoch the fit starts at, a whole number >= 0"):
        TrackEpochCallback(synth_learner(), epoch_offset=bad)


def test_numpy_and_path_settings_are_kept_plain_and_export():
    learn = synth_learner()
    cb = TrackEpochCallback(learn, name=Path('ep'), epoch_offset=np.int64(1))
    assert type(cb.epoch_offset) is int and cb.name == 'ep' and cb.path == _epoch_file(learn, 'ep')
    learn.callbacks.append(cb)
    learn.export()  # `load_learner` reads back only plain values
    again = load_learner(learn.path)
    cb2 = next(c for c in again.callbacks if isinstance(c, TrackEpochCallback))
    assert (cb2.name, cb2.epoch_offset) == ('ep', 1)


def test_a_damaged_file_does_not_stop_load_learner():
    learn = synth_learner()
    learn.callbacks.append(TrackEpochCallback(learn))
    learn.export()
    f = _epoch_file(learn); f.parent.mkdir(parents=True, exist_ok=True); f.write_text('garbage')
    again = load_learner(learn.path)  # inference needs no epoch
    assert again.predict(learn.data.valid_ds[0][0]) is not None


# ---------------------------------------------------------------- a NaN monitor is said, once a fit (#8)

def _nan_valid_learner():
    "A Learner whose validation loss is NaN (the training loss is not)."
    learn = synth_learner()
    f = learn.loss_func
    learn.loss_func = lambda out, y: f(out, y) * (1. if torch.is_grad_enabled() else float('nan'))
    return learn


@pytest.mark.parametrize('make,does', [(lambda l: EarlyStoppingCallback(l, patience=5), 'towards `patience`'),
                                        (lambda l: SaveModelCallback(l), 'no model is saved for it'),
                                        (lambda l: ReduceLROnPlateauCallback(l, patience=5), 'a cut of the lr')])
def test_a_nan_monitor_warns_once_a_fit_naming_the_monitor_and_epoch(make, does):
    learn = _nan_valid_learner()
    for _ in range(2):  # and again in the next fit
        cb = make(learn)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            learn.fit(3, 0.01, callbacks=[cb])
        nan = [str(x.message) for x in w if 'NaN' in str(x.message)]
        assert len(nan) == 1, nan
        assert nan[0].startswith(f"{type(cb).__name__}: valid_loss is NaN at epoch 0, and NaN never beats the best value (inf)"), nan
        assert does in nan[0], nan
        assert len(learn.recorder.val_losses) == 3


def test_a_nan_monitor_after_good_epochs_names_its_epoch():
    learn = synth_learner()
    f = learn.loss_func
    learn.loss_func = lambda out, y: f(out, y) * (1. if torch.is_grad_enabled() or len(learn.recorder.val_losses) < 2 else float('nan'))
    cb = SaveModelCallback(learn)
    with pytest.warns(UserWarning, match=r"valid_loss is NaN at epoch 2, and NaN never beats the best value \(\d"):
        learn.fit(4, 0.01, callbacks=[cb])
    assert cb.best_epoch == 1  # the best of the finite epochs, loaded back at the end
    np.testing.assert_allclose(cb.best, learn.recorder.val_losses[1], rtol=1e-6)


def test_a_nan_monitor_on_another_rank_says_nothing(monkeypatch):
    learn = _nan_valid_learner()
    monkeypatch.setattr(tracker, 'rank_distrib', lambda: 1)
    _no_warnings(lambda: learn.fit(2, 0.01, callbacks=[EarlyStoppingCallback(learn, patience=5)]))


def test_a_finite_monitor_says_nothing():
    learn = synth_learner()
    _no_warnings(lambda: learn.fit(2, 0.01, callbacks=[EarlyStoppingCallback(learn, patience=5), SaveModelCallback(learn)]))


def test_a_nan_best_in_a_checkpoint_is_refused():
    cb = TrackerCallback(synth_learner())
    with pytest.raises(ValueError, match=r"best=nan is not a best"): cb.load_checkpoint_state({'best': float('nan')})
    cb.load_checkpoint_state({'best': float('inf')})  # the value before any epoch: a checkpoint may hold it
    assert cb.best == float('inf')


# ---------------------------------------------------------------- the interrupted fit's warning: rank 0 only

class Interrupt(Callback):
    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == 2: raise RuntimeError('interrupted')


@pytest.mark.parametrize('rank', [0, 1])
def test_only_rank_0_warns_where_the_best_model_of_an_interrupted_fit_is(rank, monkeypatch):
    learn = synth_learner()
    monkeypatch.setattr(tracker, 'rank_distrib', lambda: rank)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        with pytest.raises(RuntimeError, match='interrupted'):
            learn.fit(4, 0.1, callbacks=[SaveModelCallback(learn, name='best'), Interrupt()])
    said = [str(x.message) for x in w if 'The fit was interrupted' in str(x.message)]
    assert len(said) == (1 if rank == 0 else 0), said
    if rank == 0: assert "`learn.load('best')` brings it back" in said[0]


def test_a_second_fit_of_one_callback_starts_where_its_first_did_and_says_so(capsys):
    "v1 reads the file once, when the callback is made: a callback kept in `learn.callbacks` starts each fit there."
    learn = synth_learner()
    learn.callbacks.append(TrackEpochCallback(learn))
    learn.fit(2)
    capsys.readouterr()
    _no_warnings(lambda: learn.fit(2))  # no warning of untrained weights: the first fit trained them
    out = capsys.readouterr().out
    assert "TrackEpochCallback: this fit starts at epoch 0, as this callback's first fit did" in out, out
    assert [r[0] for r in learn.recorder.rows] == ['0', '1']
    learn.callbacks.clear()
    learn.fit(3, callbacks=[TrackEpochCallback(learn)])  # a new one reads the file
    assert [r[0] for r in learn.recorder.rows] == ['2']


def test_a_stage_ended_by_early_stopping_gives_the_next_stage_its_whole_patience(tmp_path):
    "review 6 adversary #13: the exhausted patience count of a finished stage came back with load(with_opt=True)."
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner
    from fastbook_core.callbacks.tracker import EarlyStoppingCallback
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randn(64, 1)  # noise: no real improvement, so early stopping ends the stage
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=16, device='cpu', path=tmp_path)
    learn = Learner(data, nn.Linear(3, 1), silent=True)
    es = EarlyStoppingCallback(learn, monitor='valid_loss', patience=1, min_delta=10.)  # nothing improves by 10
    learn.fit(5, 1e-3, callbacks=[es])
    assert len(learn.recorder.val_losses) == 3  # stopped early: the first epoch beats inf, two more do not
    learn.save('stage-1')
    learn2 = Learner(data, nn.Linear(3, 1), silent=True).load('stage-1', with_opt=True)
    learn2.fit(5, 1e-3, callbacks=[EarlyStoppingCallback(learn2, monitor='valid_loss', patience=1, min_delta=10.)])
    assert len(learn2.recorder.val_losses) == 3  # a new stage: its own best and its whole patience, not stage 1's count
