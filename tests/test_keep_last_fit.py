"Learner.keep_last_fit (a sweep such as lr_find's is not what a checkpoint records) and the Recorder's end of fit."
import pytest
import torch

import fastbook_core.train  # noqa: F401  (lr_find on Learner)
from fastbook_core.callback import Callback
from fastbook_core.callbacks.tracker import EarlyStoppingCallback
from fastbook_core.test_utils import synth_learner


def saved(learn):
    return torch.load(learn.save('ck', return_path=True), weights_only=True)


def test_a_save_after_a_sweep_records_the_training_and_its_callback_states():
    learn = synth_learner()
    learn.fit(3, lr=0.05, callbacks=[EarlyStoppingCallback(learn, patience=5)])
    before = saved(learn)
    with learn.keep_last_fit(): learn.fit(2, lr=0.5, callbacks=[EarlyStoppingCallback(learn, patience=0)])
    assert len(learn.recorder.val_losses) <= 2  # the sweep's history is the recorder's, to plot
    after = saved(learn)
    for k in ('epoch', 'iteration', 'fit_complete', 'recorder', 'callbacks', 'opt_hypers'): assert after[k] == before[k], k
    assert learn.opt.lr == 0.05


def test_the_learners_own_callbacks_keep_their_states_through_a_sweep():
    learn = synth_learner()
    es = EarlyStoppingCallback(learn, patience=5)
    learn.callbacks.append(es)
    learn.fit(3, lr=0.05)
    state = es.checkpoint_state()
    with learn.keep_last_fit(): learn.fit(1, lr=5.)
    assert es.checkpoint_state() == state


def test_a_sweep_that_fails_still_leaves_the_last_fit():
    class Boom(Callback):
        def on_epoch_end(self, **kwargs): raise RuntimeError('boom')
    learn = synth_learner()
    learn.fit(2, lr=0.05)
    before = saved(learn)
    with pytest.raises(RuntimeError, match='boom'):
        with learn.keep_last_fit(): learn.fit(1, lr=0.5, callbacks=[Boom()])
    after = saved(learn)
    assert (after['epoch'], after['recorder'], after['opt_hypers']) == (before['epoch'], before['recorder'], before['opt_hypers'])


def test_two_sweeps_in_a_row_and_lr_find_twice_still_record_the_training():
    learn = synth_learner()
    learn.fit(3, lr=0.05)
    with learn.keep_last_fit(): learn.fit(1, lr=0.5)
    learn.lr_find(num_it=10)
    learn.lr_find(num_it=10)  # a sweep after a sweep: the mark goes back to the training, not to the first sweep
    ck = saved(learn)
    assert (ck['epoch'], ck['fit_complete'], len(ck['recorder']['val_losses'])) == (3, True, 3)


def test_a_real_fit_after_a_sweep_is_what_save_records():
    learn = synth_learner()
    learn.fit(3, lr=0.05)
    with learn.keep_last_fit(): learn.fit(1, lr=0.5)
    learn.fit(2, lr=0.05)
    ck = saved(learn)
    assert (ck['epoch'], len(ck['recorder']['val_losses'])) == (2, 2)


# ------------------------------------------------ the Recorder marks a fit that ended (was in Learner.fit)

class StopAt(Callback):
    def __init__(self, at, exc=None): self.at, self.exc = at, exc
    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == self.at:
            if self.exc: raise self.exc
    def on_epoch_end(self, epoch, **kwargs):
        if self.exc is None and epoch + 1 == self.at: return {'stop_training': True}


@pytest.mark.parametrize('how, complete', [('ended', True), ('stopped', True), ('interrupted', False)])
def test_recorder_says_whether_the_fit_ended(how, complete):
    learn = synth_learner()
    if how == 'ended': learn.fit(2)
    elif how == 'stopped': learn.fit(4, callbacks=[StopAt(2)])
    else:
        with pytest.raises(KeyboardInterrupt): learn.fit(4, callbacks=[StopAt(2, KeyboardInterrupt())])
    assert learn.recorder.epoch == 2 and learn.recorder.n_epochs == (2 if complete else 4)
    assert saved(learn)['fit_complete'] is complete


def test_a_checkpoints_pending_states_wait_through_a_sweep():
    learn = synth_learner()
    learn.callbacks.append(EarlyStoppingCallback(learn, patience=5))
    learn.fit(3, lr=0.05)
    file = learn.save('stage', return_path=True)
    states = torch.load(file, weights_only=True)['callbacks']
    new = synth_learner(); new.path = learn.path
    new.callbacks.append(EarlyStoppingCallback(new, patience=5))  # the sweep has the callback the states are for
    new.load('stage', with_opt=True)
    with new.keep_last_fit(): new.fit(1, lr=0.5)
    assert saved(new)['callbacks'] == states  # still pending: the sweep did not take them
    new.fit(1, lr=0.05)
    assert new.callbacks[-1].best <= states['EarlyStoppingCallback[monitor=valid_loss]']['best']  # the resumed fit did


def test_a_sweep_puts_the_weights_back_and_leaves_a_backup_alone(tmp_path):
    # review 5.26 #17: a sweep's training is not the fit's; s5-bk2: BackupAndRestore stays out of any sweep
    from functools import partial
    from fastbook_core.callbacks.backup import BackupAndRestore
    from fastbook_core.test_utils import synth_learner
    learn = synth_learner()
    learn.path = tmp_path
    learn.fit(2, 0.05)
    w = [p.detach().clone() for p in learn.model.parameters()]
    backup = tmp_path / 'backup'; backup.mkdir(); (backup / 'backup.pth').write_bytes(b'not a backup: a sweep must not read it')
    learn.callback_fns.append(partial(BackupAndRestore))
    with learn.keep_last_fit():
        assert learn.sweeping
        learn.fit(1, 0.5)
    assert not learn.sweeping
    for p, q in zip(learn.model.parameters(), w): assert torch.equal(p.detach(), q)
    assert (backup / 'backup.pth').read_bytes() == b'not a backup: a sweep must not read it'
    assert sorted(p.name for p in backup.iterdir()) == ['backup.pth']
