"A manual exact resume (`load(ck, with_opt=True)` + `start_epoch`) goes on with the loaded history (review 5.26 #1, #9)."
import csv
import pytest
import torch

from fastbook_core.callback import Callback
from fastbook_core.test_utils import synth_learner
from fastbook_core.callbacks.tracker import SaveModelCallback
from fastbook_core.callbacks.csv_logger import CSVLogger
import fastbook_core.train  # noqa: F401  (fit_one_cycle)


class CtrlC(Callback):
    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == 2: raise KeyboardInterrupt


def _interrupted(tmp_path, csv_logger=False):
    learn = synth_learner(); learn.path = tmp_path
    cbs = [SaveModelCallback(learn, every='epoch', name='ck')] + ([CSVLogger(learn, filename='hist')] if csv_logger else [])
    with pytest.raises(KeyboardInterrupt): learn.fit_one_cycle(4, 0.1, callbacks=cbs + [CtrlC()])
    return learn


def test_the_resumed_fit_keeps_the_loaded_history_and_a_later_save_has_every_epoch_once(tmp_path):
    first = _interrupted(tmp_path)
    vl01 = list(first.recorder.val_losses)
    r = synth_learner(); r.path = tmp_path
    r.load('ck_1', with_opt=True)
    r.fit_one_cycle(4, 0.1, start_epoch=2, callbacks=[SaveModelCallback(r, every='epoch', name='ck')])
    assert len(r.recorder.val_losses) == 4 and r.recorder.val_losses[:2] == pytest.approx(vl01)
    assert r.recorder.nb_batches == [10] * 4 and len(r.recorder.losses) == 40 and len(r.recorder.rows) == 4
    ck = torch.load(r.save('final', return_path=True), weights_only=True)
    assert (ck['epoch'], ck['fit_complete'], len(ck['recorder']['val_losses'])) == (4, True, 4)


def test_the_csv_log_of_a_manual_resume_holds_every_epoch_once(tmp_path):
    _interrupted(tmp_path, csv_logger=True)
    r = synth_learner(); r.path = tmp_path
    r.load('ck_1', with_opt=True)
    r.fit_one_cycle(4, 0.1, start_epoch=2, callbacks=[SaveModelCallback(r, every='epoch', name='ck'), CSVLogger(r, filename='hist')])
    rows = list(csv.reader(open(tmp_path / 'hist.csv')))
    assert [row[0] for row in rows[1:]] == ['0', '1', '2', '3']


def test_a_fit_after_the_resumed_one_starts_its_own_history(tmp_path):
    _interrupted(tmp_path)
    r = synth_learner(); r.path = tmp_path
    r.load('ck_1', with_opt=True)
    r.fit_one_cycle(4, 0.1, start_epoch=2, callbacks=[SaveModelCallback(r, every='epoch', name='ck')])
    r.fit(1, 0.01)
    assert len(r.recorder.val_losses) == 1
