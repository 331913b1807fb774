"Issue 26, the trial's last problems: the CSV log across other columns, settings read without the model, a file left mid-way."
import csv
import io
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner, load_learner
from fastbook_core.callback import Callback
from fastbook_core.callbacks.csv_logger import CSVLogger
from fastbook_core.callbacks.tracker import SaveModelCallback, TrackEpochCallback
from fastbook_core.metrics import accuracy, error_rate
from fastbook_core.test_utils import classif_learner
from fastbook_core.torch_core import CheckpointError, load_checkpoint
import fastbook_core.train  # noqa: F401  (fit_one_cycle)


def _rows(path: Path) -> list[dict]:
    with open(path, newline='') as f: return list(csv.DictReader(f))


def _caught(f):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        res = f()
    return res, ' '.join(str(m.message) for m in w)


class Boom(Callback):
    "Raise at the start of epoch `at`, as a crash would."
    def __init__(self, at): self.at = at
    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == self.at: raise RuntimeError('boom')


# --- #3: CSVLogger keeps the earlier rows when the columns change ----------------------------------------------------

@pytest.mark.parametrize('append', [False, True])
def test_a_load_resume_with_one_more_metric_keeps_the_logged_epochs(tmp_path, append):
    "trial 26 #3: append=False dropped the epochs before the resume; append=True refused, advising append=False."
    learn = classif_learner(metrics=[accuracy]); learn.path = tmp_path
    cbs = lambda l: [CSVLogger(l, append=append), SaveModelCallback(l, every='epoch', name='ck')]
    with pytest.raises(RuntimeError, match='boom'): learn.fit_one_cycle(4, 1e-2, callbacks=cbs(learn) + [Boom(2)])
    before = _rows(tmp_path / 'history.csv')
    assert [r['epoch'] for r in before] == ['0', '1']
    learn = classif_learner(metrics=[accuracy, error_rate]); learn.path = tmp_path
    learn.load('ck_1', with_opt=True)
    _, said = _caught(lambda: learn.fit_one_cycle(4, 1e-2, start_epoch=2, callbacks=cbs(learn)))
    assert 'starts without the 2 epochs before the resume' in said, said  # the Recorder's history has other columns
    rows = _rows(tmp_path / 'history.csv')
    assert [r['epoch'] for r in rows] == ['0', '1', '2', '3']
    assert [r['accuracy'] for r in rows[:2]] == [r['accuracy'] for r in before]  # the logged values, not rebuilt
    assert [r['error_rate'] for r in rows] == ['', ''] + [r['error_rate'] for r in rows[2:]] and rows[3]['error_rate']
    assert list(rows[0]) == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'error_rate', 'time']


def test_append_with_one_metric_fewer_keeps_its_column(tmp_path):
    learn = classif_learner(metrics=[accuracy, error_rate]); learn.path = tmp_path
    learn.fit(1, 1e-2, callbacks=[CSVLogger(learn)])
    learn.metrics = [accuracy]
    learn.fit(1, 1e-2, callbacks=[CSVLogger(learn, append=True)])
    rows = _rows(tmp_path / 'history.csv')
    assert list(rows[0]) == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time', 'error_rate']
    assert rows[0]['error_rate'] and rows[1]['error_rate'] == '' and rows[1]['accuracy']


def test_append_refuses_a_file_that_is_not_a_log_and_leaves_it(tmp_path):
    learn = classif_learner(); learn.path = tmp_path
    (tmp_path / 'history.csv').write_text('name,score\nme,3\n')
    with pytest.raises(ValueError, match="is not a table of epochs.*append=False to replace"):
        learn.fit(1, callbacks=[CSVLogger(learn, append=True)])
    assert (tmp_path / 'history.csv').read_text() == 'name,score\nme,3\n'
    learn.fit(1, callbacks=[CSVLogger(learn)])  # the Learner is usable, and append=False replaces the file
    assert [r['epoch'] for r in _rows(tmp_path / 'history.csv')] == ['0']


# --- #11: two CSVLoggers of one file ---------------------------------------------------------------------------------

def test_two_csvloggers_of_one_file_are_refused_before_writing(tmp_path):
    learn = classif_learner(); learn.path = tmp_path
    (tmp_path / 'history.csv').write_text('epoch,train_loss\n0,1.0\n')
    with pytest.raises(ValueError, match=r"Two CSVLoggers of this fit write .*history.csv: give one another filename"):
        learn.fit(1, callbacks=[CSVLogger(learn, append=True), CSVLogger(learn)])
    assert (tmp_path / 'history.csv').read_text() == 'epoch,train_loss\n0,1.0\n'
    learn.fit(1, callbacks=[CSVLogger(learn), CSVLogger(learn, filename='history_2')])  # two files: fine
    assert len(_rows(tmp_path / 'history.csv')) == len(_rows(tmp_path / 'history_2.csv')) == 1


# --- #6: load_learner(model=, loss_func=) reads the settings without the model ---------------------------------------

class MyNet(nn.Module):  # a class of the test module: the safe load refuses to unpickle it
    def __init__(self): super().__init__(); self.lin = nn.Linear(3, 2)
    def forward(self, x): return self.lin(x)


def _data(tmp_path):
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    return DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', path=tmp_path)


def test_load_learner_with_model_and_loss_reads_the_allowed_settings(tmp_path):
    "trial 26 #6: the opt_func partial, metrics and callbacks were dropped though they are on the allow list."
    learn = Learner(_data(tmp_path), MyNet(), opt_func=partial(torch.optim.SGD, momentum=0.9), metrics=[accuracy], silent=True)
    learn.callbacks.append(TrackEpochCallback(learn, name='ep'))
    learn.export()
    with pytest.raises(CheckpointError, match='trust_code'): load_learner(tmp_path)  # MyNet is not unpickled
    inf, said = _caught(lambda: load_learner(tmp_path, model=MyNet(), loss_func=nn.CrossEntropyLoss()))
    assert 'not read' not in said, said
    assert inf.opt_func.func is torch.optim.SGD and inf.opt_func.keywords == {'momentum': 0.9} and inf.metrics == [accuracy]
    assert [type(cb).__name__ for cb in inf.callbacks] == ['TrackEpochCallback'] and inf.callbacks[0].name == 'ep'


class MyMetric:
    def __call__(self, out, yb): return (out.argmax(-1) == yb).float().mean()


def test_load_learner_with_model_names_the_settings_it_cannot_read_and_why(tmp_path):
    learn = Learner(_data(tmp_path), nn.Linear(3, 2), metrics=[MyMetric()], silent=True)
    learn.export()
    inf, said = _caught(lambda: load_learner(tmp_path, model=nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss()))
    assert 'opt_func, metrics, callback_fns, callbacks are not read' in said and 'MyMetric' in said, said
    assert 'Pass opt_func=, metrics=, callback_fns= to load_learner' in said and 'learn.callbacks' in said, said
    assert 'trust_code=True for a file you trust' in said
    assert inf.metrics == []
    inf, said = _caught(lambda: load_learner(tmp_path, model=nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss(), trust_code=True))
    assert 'not read' not in said and isinstance(inf.metrics[0], MyMetric)


def test_load_learner_with_model_reads_an_export_without_settings_and_says_so(tmp_path):
    "An export of an earlier release keeps the settings only beside the model: they are named as unread, with why."
    learn = Learner(_data(tmp_path), nn.Linear(3, 2), metrics=[accuracy], silent=True)
    learn.export()
    state = load_checkpoint(tmp_path / 'export.pkl')
    del state['settings']
    torch.save(state, tmp_path / 'old.pkl')
    inf, said = _caught(lambda: load_learner(tmp_path, 'old.pkl', model=nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss()))
    assert 'metrics' in said and 'an earlier release wrote it' in said and 'trust_code' not in said, said
    assert inf.metrics == []
    assert load_learner(tmp_path, 'old.pkl').metrics == [accuracy]  # without model=, read beside the model as before


# --- #13: a callback's folder given as a Path ------------------------------------------------------------------------

def test_a_backup_dir_given_as_a_path_exports(tmp_path):
    from fastbook_core.callbacks.backup import BackupAndRestore
    learn = Learner(_data(tmp_path), nn.Linear(3, 2), silent=True)
    learn.callbacks.append(BackupAndRestore(learn, backup_dir=Path('bk')))
    learn.export()
    inf = load_learner(tmp_path)
    assert [str(cb.backup_dir) for cb in inf.callbacks] == ['bk']
    learn.callbacks[-1] = BackupAndRestore(learn, backup_dir=Path('a') / 'b')
    with pytest.raises(ValueError, match='a path of folders could make it write anywhere'): learn.export()


# --- #14: an open file left past its start ---------------------------------------------------------------------------

def test_a_buffer_left_at_its_end_asks_for_seek_0(tmp_path):
    buf = io.BytesIO()
    torch.save({'w': torch.ones(2)}, buf)  # left at its end, as after writing
    with pytest.raises(CheckpointError, match=r'is at its end.*seek\(0\)'): load_checkpoint(buf)
    buf.seek(5)  # part-way in (trial 26 #14: read as 'not a torch file')
    with pytest.raises(CheckpointError, match=r'is at position 5, and a torch file begins at position 0.*seek\(0\)'):
        load_checkpoint(buf)
    buf.seek(0)
    assert load_checkpoint(buf)['w'].tolist() == [1.0, 1.0]
    junk = io.BytesIO(b'hello, not a torch file at all')
    junk.seek(3)
    with pytest.raises(CheckpointError) as e: load_checkpoint(junk)
    assert 'seek(0)' not in str(e.value)  # a file that is not torch's is not told to rewind


# --- #10: fewer class names than outputs -----------------------------------------------------------------------------

def test_predict_with_fewer_classes_than_outputs_says_so(tmp_path):
    learn = Learner(_data(tmp_path), nn.Linear(3, 4), silent=True)
    learn.data.classes = ['a', 'b']
    with pytest.raises(ValueError, match=r'The model gives 4 outputs, and data.classes names 2 classes.*4 names'):
        learn.predict(torch.randn(3))
    learn.data.classes = list('abcd')
    assert learn.predict(torch.randn(3))[0] in 'abcd'


# --- #9: TrackEpochCallback without a file, and a start_epoch --------------------------------------------------------

def test_track_epoch_without_a_file_says_the_start_epoch_it_was_given(tmp_path, capsys):
    learn = classif_learner(silent=False); learn.path = tmp_path
    learn.fit_one_cycle(4, 1e-2, start_epoch=2, callbacks=[TrackEpochCallback(learn)])
    out = capsys.readouterr().out
    assert 'this fit starts at epoch 2 (the start_epoch it was given)' in out and 'starts at epoch 0' not in out, out
    assert (tmp_path / 'models' / 'epoch').read_text() == '3'


# --- #12: SaveModelCallback's state key names every='epoch' ----------------------------------------------------------

def test_savemodel_every_epoch_and_improvement_of_one_name_keep_two_states(tmp_path):
    learn = classif_learner(); learn.path = tmp_path
    best, each = SaveModelCallback(learn, name='ck'), SaveModelCallback(learn, every='epoch', name='ck')
    assert best.state_key == 'SaveModelCallback[monitor=valid_loss,name=ck]'  # the default's key is unchanged
    assert each.state_key == 'SaveModelCallback[monitor=valid_loss,name=ck,every=epoch]'
    learn.fit(2, 1e-2, callbacks=[best, each])
    assert (learn.path / learn.model_dir / 'ck.pth').is_file() and (learn.path / learn.model_dir / 'ck_1.pth').is_file()
    states = load_checkpoint(learn.path / learn.model_dir / 'ck_1.pth')['callbacks']
    assert {'SaveModelCallback[monitor=valid_loss,name=ck]', 'SaveModelCallback[monitor=valid_loss,name=ck,every=epoch]'} <= set(states)
    with pytest.raises(ValueError, match="Two SaveModelCallbacks of this fit write 'ck'"):
        learn.fit(1, callbacks=[SaveModelCallback(learn, name='ck'), SaveModelCallback(learn, monitor='accuracy', name='ck')])
