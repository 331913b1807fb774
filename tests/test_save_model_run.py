"SaveModelCallback loads back only its own run's file (review 5.26 #18), one decision for every process; numbered names (#15)."
import os, tempfile, uuid, warnings
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fastbook_core.callback import Callback
from fastbook_core.test_utils import synth_learner
from fastbook_core.callbacks.tracker import SaveModelCallback, _rank0_decides


class OtherRun(Callback):
    "Another Learner in the same folder writes its own bestmodel.pth at the end of epoch `at`, after this fit's save."
    _order = 20  # after SaveModelCallback
    def __init__(self, other, at=2, stop=False): self.other, self.at, self.stop = other, at, stop
    def on_epoch_end(self, epoch, **kwargs):
        if epoch == self.at:
            self.other.fit(1, 1e-4, callbacks=[SaveModelCallback(self.other)])
            if self.stop: raise KeyboardInterrupt


def _two(tmp_path):
    a, b = synth_learner(), synth_learner(seed=1)
    a.path = b.path = tmp_path
    return a, b


def test_a_best_file_another_run_overwrote_is_not_loaded_back(tmp_path):
    a, b = _two(tmp_path)
    with pytest.warns(UserWarning, match=r"bestmodel\.pth is no longer the file this fit saved.*keeps its last weights"):
        a.fit(3, lr=[1.5], callbacks=[SaveModelCallback(a), OtherRun(b)])
    assert a.validate()[0] == pytest.approx(a.recorder.val_losses[-1], rel=1e-5)  # its own last weights
    assert a.validate()[0] != pytest.approx(b.recorder.val_losses[-1], rel=1e-3)  # not b's model


def test_its_own_best_file_is_still_loaded_back(tmp_path):
    a = synth_learner(); a.path = tmp_path
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        a.fit(3, lr=[1.5], callbacks=[SaveModelCallback(a)])
    assert a.validate()[0] == pytest.approx(min(a.recorder.val_losses), rel=1e-5)


def test_an_interrupted_fit_whose_best_file_was_overwritten_says_it_is_lost(tmp_path):
    a, b = _two(tmp_path)
    with pytest.warns(UserWarning, match=r"interrupted.*no longer the file this fit saved.*best model is lost"):
        with pytest.raises(KeyboardInterrupt): a.fit(3, lr=[1.5], callbacks=[SaveModelCallback(a), OtherRun(b, stop=True)])


def _worker(rank, init, out):
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2)
    try:
        mark = _rank0_decides(lambda: uuid.uuid4().hex)
        mine = _rank0_decides(lambda: dist.get_rank() == 0)  # what rank 0 decides, every rank gets
        torch.save({'mark': mark, 'mine': mine}, os.path.join(out, f'{rank}.pt'))
        dist.barrier()
    finally: dist.destroy_process_group()


def test_the_run_mark_and_the_decision_are_rank_0s_on_every_process(tmp_path):
    "In a distributed run every process must load the file or none (Learner.load begins with a barrier)."
    init = f'file://{tempfile.mktemp(dir=tmp_path)}'
    mp.spawn(_worker, args=(init, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f'{r}.pt') for r in (0, 1))
    assert r0 == r1 and r0['mine'] is True and len(r0['mark']) == 32


def test_not_distributed_the_decision_is_made_here():
    assert _rank0_decides(lambda: 'here') == 'here'


@pytest.mark.parametrize('name', ['ck', 'ck.pth'])
def test_every_epoch_names_keep_the_suffix_last(name, tmp_path):
    "#15: `name='ck.pth'` writes ck_0.pth, ck_1.pth (not ck.pth_0.pth), and a resume finds them."
    learn = synth_learner(); learn.path = tmp_path
    learn.fit(2, 0.1, callbacks=[SaveModelCallback(learn, every='epoch', name=name)])
    assert sorted(p.name for p in (tmp_path / 'models').iterdir()) == ['ck_0.pth', 'ck_1.pth']
    cb = SaveModelCallback(learn, every='epoch', name=name)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        cb.jump_to_epoch(2)  # loads ck_1
