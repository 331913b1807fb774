"Ctrl-C, then save (issue 26, B6): an interrupted fit keeps the weights it had; SaveModelCallback says where the best is."
import warnings
import pytest
import torch

import fastbook_core.train  # noqa: F401  (fit_one_cycle on Learner)

from fastbook_core.callback import Callback
from fastbook_core.callbacks.tracker import EarlyStoppingCallback, SaveModelCallback
from fastbook_core.test_utils import synth_learner
from fastbook_core.torch_core import load_checkpoint


class CtrlC(Callback):
    "Keep the weights and optimizer state there are at the start of epoch `at`, then raise KeyboardInterrupt."
    def __init__(self, learn, at: int): self.learn, self.at = learn, at
    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == self.at:
            self.weights = {k: v.clone() for k, v in self.learn.model.state_dict().items()}
            self.opt = {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()}
                        for k, s in self.learn.opt.opt.state_dict()['state'].items()}
            raise KeyboardInterrupt


def interrupted_fit(learn, fit, at=4):
    stop = CtrlC(learn, at)
    with pytest.warns(UserWarning, match=r"The fit was interrupted \(KeyboardInterrupt\): the Learner keeps the weights") as ws:
        with pytest.raises(KeyboardInterrupt): fit(learn, [SaveModelCallback(learn, name='best'), stop])
    return stop, [str(w.message) for w in ws if 'interrupted' in str(w.message)]


def plain(learn, cbs): learn.fit(6, lr=[1.5], callbacks=cbs)
def cycle(learn, cbs, start_epoch=None): learn.fit_one_cycle(6, 0.5, callbacks=cbs, start_epoch=start_epoch)


def test_interrupted_fit_keeps_its_weights_and_optimizer_state():
    learn = synth_learner()
    stop, msgs = interrupted_fit(learn, plain, at=2)  # epoch 1 is worse than epoch 0
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, stop.weights[k]), k
    for k, s in learn.opt.opt.state_dict()['state'].items():
        for n, t in s.items(): assert torch.equal(torch.as_tensor(t), torch.as_tensor(stop.opt[k][n])), (k, n)
    best = min(range(2), key=lambda i: learn.recorder.val_losses[i])
    assert len(msgs) == 1 and f"epoch {best}, valid_loss=" in msgs[0] and "`learn.load('best')` brings it back" in msgs[0]
    assert str(learn._model_file('best')) in msgs[0]


def test_save_after_ctrl_c_writes_the_weights_at_interruption_not_the_best():
    learn = synth_learner()
    stop, _ = interrupted_fit(learn, plain, at=2)
    learn.save('interrupted')
    ck = load_checkpoint(learn._model_file('interrupted'), 'cpu')
    for k, v in ck['model'].items(): assert torch.equal(v, stop.weights[k]), k
    assert ck['epoch'] == 2 and not ck['fit_complete']
    best = load_checkpoint(learn._model_file('best'), 'cpu')['model']
    assert any(not torch.equal(best[k], v) for k, v in ck['model'].items())  # the best epoch was an earlier one: nothing lost
    learn.load('best')
    assert learn.validate()[0] == pytest.approx(min(learn.recorder.val_losses), rel=1e-5)


def test_resuming_the_save_after_ctrl_c_is_the_uninterrupted_run():
    whole = synth_learner()
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a completed fit warns nothing
        cycle(whole, [SaveModelCallback(whole, name='best')])
    part = synth_learner()
    interrupted_fit(part, cycle)
    part.save('interrupted')
    resumed = synth_learner(); resumed.path = part.path  # the same data, in the interrupted run's folder
    torch.manual_seed(1)  # the random state comes from the checkpoint
    resumed.load('interrupted', with_opt=True)
    cycle(resumed, [SaveModelCallback(resumed, name='best')], start_epoch=4)
    assert resumed.recorder.val_losses == whole.recorder.val_losses  # with the loaded history of epochs 0-3
    for (k, a), b in zip(resumed.model.state_dict().items(), whole.model.state_dict().values()):
        assert torch.equal(a, b), k  # both end with the best model of the run, the same one


def test_a_completed_or_early_stopped_fit_still_loads_the_best_back():
    for extra in ([], ['es']):
        learn = synth_learner()
        cbs = [SaveModelCallback(learn, name='best')] + [EarlyStoppingCallback(learn, patience=0) for _ in extra]
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            learn.fit(6, lr=[1.5], callbacks=cbs)
        assert learn.validate()[0] == pytest.approx(min(learn.recorder.val_losses), rel=1e-5)
        if extra: assert len(learn.recorder.val_losses) < 6  # it did stop early


def test_an_interruption_before_any_save_warns_nothing():
    learn = synth_learner()
    stop = CtrlC(learn, 0)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(KeyboardInterrupt): learn.fit(3, callbacks=[SaveModelCallback(learn, name='best'), stop])
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, stop.weights[k]), k
