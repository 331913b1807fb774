"A save inside an epoch says that it cannot resume exactly from there (review 5.26 #2)."
import warnings
import pytest

from fastbook_core.callback import Callback
from fastbook_core.test_utils import synth_learner
from fastbook_core.callbacks.tracker import SaveModelCallback


class CtrlC(Callback):
    "Ctrl-C after `after` training batches of epoch 2 (10 batches an epoch), or from a metric in its validation."
    def __init__(self, after): self.after, self.n = after, 0
    def on_epoch_begin(self, epoch, **kwargs): self.epoch, self.n = epoch, 0
    def on_batch_end(self, train, **kwargs):
        if self.epoch != 2: return
        if train: self.n += 1
        if (train and self.n == self.after) or (not train and self.after == 10): raise KeyboardInterrupt


@pytest.mark.parametrize('after', [6, 10])  # 10: all training batches done, stopped in validation
def test_a_save_after_a_mid_epoch_ctrl_c_warns_with_the_batches_and_what_resumes_exactly(after):
    learn = synth_learner()
    with pytest.raises(KeyboardInterrupt): learn.fit(5, 0.1, callbacks=[CtrlC(after)])
    with pytest.warns(UserWarning, match=rf"{after} training batches into epoch 2.*start_epoch=2 trains those batches again.*BackupAndRestore"):
        learn.save('interrupted')


def test_a_save_from_a_callback_inside_an_epoch_warns():
    class SaveEvery5(Callback):
        def __init__(self, learn): self.learn, self.n = learn, 0
        def on_batch_end(self, train, **kwargs):
            if train:
                self.n += 1
                if self.n == 25: self.learn.save('mid')
    learn = synth_learner()
    with pytest.warns(UserWarning, match=r"5 training batches into epoch 2"):
        learn.fit(3, 0.1, callbacks=[SaveEvery5(learn)])


def test_saves_at_epoch_ends_do_not_warn(tmp_path):
    learn = synth_learner(); learn.path = tmp_path
    class CtrlAtEpoch2(Callback):
        def on_epoch_begin(self, epoch, **kwargs):
            if epoch == 2: raise KeyboardInterrupt
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(KeyboardInterrupt):
            learn.fit(4, 0.1, callbacks=[SaveModelCallback(learn, every='epoch', name='ck'), CtrlAtEpoch2()])
        learn.save('interrupted')  # at the start of epoch 2: what it records is where it is
        learn.fit(1, 0.1)
        learn.save('stage')
