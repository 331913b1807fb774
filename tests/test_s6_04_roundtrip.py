"Issue 26, basic_train's part: what load_learner is given, what export refuses, a resume's smoothed loss, odd file names."
import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastbook_core.basic_data import DatasetType
from fastbook_core.basic_train import load_learner
from fastbook_core.callback import Callback
from fastbook_core.test_utils import synth_learner
from fastbook_core.torch_core import CheckpointError, CheckpointNotFoundError
import fastbook_core.train  # noqa: F401  (fit_one_cycle)


def _exported(tmp_path, **kwargs):
    learn = synth_learner(**kwargs); learn.path = tmp_path
    learn.fit(1, 0.1)
    learn.export()
    return learn


# --- load_learner: a file as path, v1's keyword form and its data arguments -------------------------------------------

def test_a_file_as_path_says_give_the_folder_and_file(tmp_path):
    _exported(tmp_path)
    with pytest.raises(CheckpointNotFoundError) as e: load_learner(tmp_path / 'export.pkl')
    msg = str(e.value)
    assert 'give the folder, and the name as `file`' in msg and f"load_learner(path={str(tmp_path)!r}, file='export.pkl')" in msg
    with pytest.raises(CheckpointNotFoundError, match="file='export.pkl'"): load_learner(tmp_path / 'nowhere' / 'export.pkl')
    load_learner(tmp_path, file='export.pkl')  # the call the message gives works


def test_v1s_keyword_form_loads(tmp_path):
    learn = _exported(tmp_path)
    x = learn.data.valid_ds.tensors[0]
    for inf in (load_learner(path=tmp_path), load_learner(path=tmp_path, file='export.pkl'),
                load_learner(path=str(tmp_path), file='export.pkl', test=None, tfm_y=None)):
        torch.testing.assert_close(inf.pred_batch(batch=(x, torch.zeros(len(x)))), learn.pred_batch(batch=(x, torch.zeros(len(x)))))


@pytest.mark.parametrize('kw, bs', [({'bs': 4}, 4), ({'val_bs': 5}, 5), ({'bs': 4, 'val_bs': 6}, 6), ({}, None)])
def test_v1s_data_arguments_make_the_test_loader(tmp_path, kw, bs):
    learn = _exported(tmp_path)
    inf = load_learner(tmp_path, test=learn.data.valid_ds, **kw)
    if bs is not None: assert inf.data.test_dl.batch_size == bs
    preds = inf.get_preds(DatasetType.Test)[0]
    assert len(preds) == len(learn.data.valid_ds)


def test_num_workers_collate_fn_dl_tfms_and_no_check_work_to_the_end(tmp_path):
    learn = _exported(tmp_path)
    seen = []
    def collate(items):
        seen.append(len(items))
        return torch.utils.data.default_collate(items)
    def double(b): return (b[0] * 2, b[1])
    inf = load_learner(tmp_path, test=learn.data.valid_ds, bs=8, num_workers=0, collate_fn=collate, dl_tfms=[double],
                       no_check=True, device='cpu')
    assert inf.data.test_dl.num_workers == 0
    xb, _ = next(iter(inf.data.test_dl))
    torch.testing.assert_close(xb, learn.data.valid_ds.tensors[0][:8] * 2)  # the batch transform ran
    assert seen and seen[0] == 8  # the collate function made the batch
    inf = load_learner(tmp_path, test=learn.data.valid_ds, num_workers=1)
    assert inf.data.test_dl.num_workers == 1 and len(inf.get_preds(DatasetType.Test)[0]) == len(learn.data.valid_ds)


@pytest.mark.parametrize('kw', [{'bs': 8}, {'val_bs': 8}, {'num_workers': 2}, {'collate_fn': torch.utils.data.default_collate}])
def test_test_loader_arguments_without_a_test_set_are_refused(tmp_path, kw):
    _exported(tmp_path)
    with pytest.raises(TypeError, match=r"no `test=` was given"): load_learner(tmp_path, **kw)


def test_an_argument_of_neither_the_learner_nor_the_data_is_named(tmp_path):
    _exported(tmp_path)
    with pytest.raises(TypeError, match=r"load_learner got batch_size=, which neither the Learner nor the data takes.*bs, val_bs"):
        load_learner(tmp_path, batch_size=8)
    inf = load_learner(tmp_path, wd=0.1, silent=True)  # the Learner's own arguments still go to it
    assert (inf.wd, inf.silent) == (0.1, True)


# --- export's refusals name the way forward ---------------------------------------------------------------------------

class MyNet(nn.Module):  # a module-level class of this test module: the export writes it, a safe load refuses to import it
    def __init__(self): super().__init__(); self.lin = nn.Linear(2, 1)
    def forward(self, x): return self.lin(x)


def test_an_unpicklable_loss_or_model_names_model_loss_func_and_trust_code(tmp_path):
    learn = synth_learner(); learn.path = tmp_path
    learn.loss_func = lambda out, targ: F.mse_loss(out, targ)
    with pytest.raises(TypeError) as e: learn.export()
    assert 'cannot be pickled' in str(e.value) and 'model=MyModel(), loss_func=my_loss' in str(e.value) and 'trust_code=True' in str(e.value)
    class Local(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(2, 1)
        def forward(self, x): return self.lin(x)
    learn = synth_learner(); learn.path = tmp_path; learn.model = Local()
    with pytest.raises(TypeError, match=r'(?s)the model Local .*load_learner\(path, file, model=MyModel\(\)'): learn.export()
    assert not (tmp_path / 'export.pkl').exists()  # refused before anything was written


def test_the_refused_load_of_a_class_of_ones_own_names_both_ways(tmp_path):
    learn = synth_learner(); learn.path = tmp_path; learn.model = MyNet()
    learn.export()
    with pytest.raises(CheckpointError) as e: load_learner(tmp_path)
    assert 'trust_code=True' in str(e.value) and 'model=MyModel(), loss_func=my_loss' in str(e.value)
    for inf in (load_learner(tmp_path, model=MyNet(), loss_func=nn.MSELoss()), load_learner(tmp_path, trust_code=True)):  # both work
        torch.testing.assert_close(inf.model.lin.weight, learn.model.lin.weight)


# --- a manual resume: the history is carried, the smoothed loss starts again (as in v1) --------------------------------

class CtrlC(Callback):
    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == 2: raise KeyboardInterrupt


class Losses(Callback):
    "The raw and the smoothed loss of each training batch."
    def on_train_begin(self, **kwargs): self.raw, self.smooth = [], []
    def on_backward_begin(self, last_loss, smooth_loss, **kwargs):
        self.raw.append(float(last_loss.detach())); self.smooth.append(float(smooth_loss))


def test_a_manual_resume_carries_the_history_and_the_smoothed_loss(tmp_path):
    from fastbook_core.callbacks.tracker import SaveModelCallback
    first = synth_learner(); first.path = tmp_path
    with pytest.raises(KeyboardInterrupt):
        first.fit_one_cycle(4, 0.1, callbacks=[SaveModelCallback(first, every='epoch', name='ck'), CtrlC()])
    before = list(first.recorder.losses)
    r = synth_learner(); r.path = tmp_path
    r.load('ck_1', with_opt=True)
    seen = Losses()
    r.fit_one_cycle(4, 0.1, start_epoch=2, callbacks=[SaveModelCallback(r, every='epoch', name='ck'), seen])
    assert r.recorder.losses[:len(before)] == pytest.approx([float(o) for o in before])  # the history is carried
    assert len(r.recorder.losses) == len(before) + len(seen.raw)
    # v1 smoothed within a fit, from zero at each resume; here the resumed fit goes on with the checkpoint's average
    assert seen.smooth[0] != pytest.approx(seen.raw[0], rel=1e-5)


# --- odd names for save, load and export ------------------------------------------------------------------------------

def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob('*')}


@pytest.mark.parametrize('name, says', [('.', 'names a folder'), ('..', 'names a folder'), ('x/', 'names a folder'),
                                        ('runs/..', 'names a folder'), ('/', 'names a folder'), ('~', "starts with '~'"),
                                        ('~/ckpt', "starts with '~'"), (Path('~'), "starts with '~'"), ('', 'file=')])
def test_odd_names_are_refused_by_save_load_and_export_before_anything_is_written(tmp_path, monkeypatch, name, says):
    learn = synth_learner(); learn.path = tmp_path / 'run'
    learn.fit(1, 0.1)
    learn.save('good')
    monkeypatch.chdir(tmp_path)  # a relative write would land here
    before = _files(tmp_path)
    for f in (lambda: learn.save(name), lambda: learn.load(name), lambda: learn.load(name, with_opt=True), lambda: learn.export(name)):
        with pytest.raises(ValueError, match=says): f()
    assert _files(tmp_path) == before


def test_the_refusals_say_what_to_give(tmp_path):
    learn = synth_learner(); learn.path = tmp_path
    with pytest.raises(ValueError, match=r"Path\('~/ckpt'\)\.expanduser\(\)"): learn.save('~/ckpt')
    with pytest.raises(ValueError, match=r"such as 'stage-1'"): learn.save('.')
    with pytest.raises(ValueError, match=r"such as 'export.pkl'"): learn.export('x/')


def test_a_name_with_a_folder_is_a_file_in_a_subfolder_and_an_expanded_home_path_works(tmp_path, monkeypatch):
    learn = synth_learner(); learn.path = tmp_path
    learn.fit(1, 0.1)
    p = learn.save('runs/stage-1', return_path=True)
    assert p == tmp_path / 'models' / 'runs' / 'stage-1.pth' and p.is_file()
    w = learn.model.state_dict()
    fresh = synth_learner(); fresh.path = tmp_path
    fresh.load('runs/stage-1')
    for k, v in fresh.model.state_dict().items(): torch.testing.assert_close(v, w[k])
    learn.export('runs/export.pkl')
    assert (tmp_path / 'runs' / 'export.pkl').is_file() and load_learner(tmp_path, 'runs/export.pkl') is not None
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    home = Path('~/ckpts/stage-2').expanduser()
    assert learn.save(home, return_path=True) == tmp_path / 'home' / 'ckpts' / 'stage-2.pth'
    fresh.load(home)


def _normalize(b): return (b[0] - 10) / 5, b[1]


def test_dl_tfms_are_named_at_export_and_given_back_to_load_learner(tmp_path):
    "review 6: an export dropped the data's dl_tfms silently, so the loaded Learner predicted on unnormalized inputs."
    import warnings
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner, load_learner
    torch.manual_seed(0)
    x, y = torch.randn(32, 3) * 5 + 10, torch.randint(0, 2, (32,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', dl_tfms=[_normalize], path=tmp_path)
    learn = Learner(data, nn.Linear(3, 2), silent=True)
    before = learn.predict(x[0])[2]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); learn.export()
    assert any('dl_tfms (_normalize)' in str(m.message) and 'load_learner(path, file, dl_tfms=[_normalize])' in str(m.message) for m in w)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # given back as exported: nothing to say
        back = load_learner(tmp_path, dl_tfms=[_normalize])
    assert torch.allclose(back.predict(x[0])[2], before, atol=1e-6)
    # the file records their names (not the code), so load_learner says when they are missing or others
    assert torch.load(tmp_path / 'export.pkl', weights_only=True)['dl_tfms'] == ['_normalize']
    with pytest.warns(UserWarning, match=r"exported from data with dl_tfms \(_normalize\), which the file cannot carry"):
        bare = load_learner(tmp_path)
    assert not torch.allclose(bare.predict(x[0])[2], before, atol=1e-3)  # what the warning is about
    with pytest.warns(UserWarning, match=r"load_learner got dl_tfms \(<lambda>\): check that they are the same"):
        load_learner(tmp_path, dl_tfms=[lambda b: b])


def test_load_learner_with_model_and_loss_keeps_what_it_can_read(tmp_path):
    "review 6 adversary #4: with model= and loss_func=, the export's opt_func, metrics and callback_fns were dropped silently; trial 26 #6: now read apart from the model."
    import warnings
    from functools import partial
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner, load_learner
    from fastbook_core.metrics import accuracy
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', path=tmp_path)
    learn = Learner(data, nn.Linear(3, 2), opt_func=partial(torch.optim.SGD, momentum=0.9), metrics=[accuracy], silent=True)
    learn.export()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        inf = load_learner(tmp_path, model=nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss())
    assert not any('not read' in str(m.message) for m in w), [str(m.message) for m in w]
    assert inf.opt_func.func is torch.optim.SGD and inf.opt_func.keywords == {'momentum': 0.9} and inf.metrics == [accuracy]
    given = partial(torch.optim.SGD, momentum=0.5)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        inf = load_learner(tmp_path, model=nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss(), opt_func=given,
                           metrics=[], callback_fns=[])
    assert not any('not read' in str(m.message) for m in w)
    assert inf.opt_func is given and inf.metrics == []  # given: they replace the file's


def test_an_optimizer_partial_holding_numpy_exports_and_loads(tmp_path):
    "review 6 adversary #5: partial(Adam, betas=np.array(...)) was written, then refused by the safe load."
    from functools import partial
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner, load_learner
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', path=tmp_path)
    learn = Learner(data, nn.Linear(3, 2), opt_func=partial(torch.optim.Adam, betas=np.array([0.8, 0.9]), eps=np.float32(1e-7)), silent=True)
    learn.fit(1, 1e-3)
    # torch before 2.6 keeps the array as it was given: the wrapper reads it as a pair, and the saved state loads safely
    assert learn.opt.param_groups[0]['betas'] == (0.8, 0.9) and (learn.opt.mom, learn.opt.beta) == (0.8, 0.9)
    assert type(learn.opt.param_groups[0]['eps']) is float
    learn.save('with_opt'); learn.load('with_opt')
    learn.export()
    inf = load_learner(tmp_path)
    assert inf.opt_func.func is torch.optim.Adam
    assert inf.opt_func.keywords['betas'] == (0.8, 0.9) and type(inf.opt_func.keywords['eps']) is float
    inf.data = data
    inf.fit(1, 1e-3)  # the optimizer made from it trains


def test_an_export_of_another_format_or_unknown_hypers_is_named_by_load_learner(tmp_path):
    "review 6 #9: a newer format read as 'not written by export'; an unknown hyper-parameter key was not named."
    import pytest, torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner, load_learner
    from fastbook_core.torch_core import CheckpointError
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', path=tmp_path)
    Learner(data, nn.Linear(3, 2), silent=True).export()
    state = torch.load(tmp_path / 'export.pkl', weights_only=True)
    torch.save({**state, 'format': 'fastbook_core.export/2'}, tmp_path / 'newer.pkl')
    with pytest.raises(CheckpointError, match=r"newer.pkl is an export in the format 'fastbook_core.export/2'.*pip install -U"):
        load_learner(tmp_path, 'newer.pkl')
    torch.save({**state, 'hypers': {**state['hypers'], 'ema_decay': 0.9}}, tmp_path / 'more.pkl')
    for trust in (False, True):  # named before anything is unpickled, trusted or not
        with pytest.raises(CheckpointError, match="hold 'ema_decay', which this release of fastbook_core does not know"):
            load_learner(tmp_path, 'more.pkl', trust_code=trust)
    assert isinstance(load_learner(tmp_path).model, nn.Linear)


def test_a_frozen_stage_loaded_after_unfreeze_names_the_freeze_to_it_fits(tmp_path):
    "review 6 #10: the error hinted at frozen layers but gave no remedy."
    import pytest, torch, warnings
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner
    from fastbook_core.torch_core import CheckpointError
    x, y = torch.randn(32, 2), torch.randint(0, 2, (32,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', path=tmp_path)
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Linear(8, 8), nn.Linear(8, 2))
    learn = Learner(data, model, silent=True)
    learn.split(lambda m: (m[2], m[3]))  # three layer groups
    learn.freeze_to(1); learn.fit(1, 1e-3); learn.save("mid")  # BatchNorm of group 0 trains (train_bn)
    learn.unfreeze()
    flags = [p.requires_grad for p in learn.model.parameters()]
    with pytest.raises(CheckpointError, match=r"frozen as `learn.freeze_to\(1\)` leaves them: call `learn.freeze_to\(1\)` before"):
        learn.load('mid', with_opt=True)
    assert [p.requires_grad for p in learn.model.parameters()] == flags  # nothing changed by trying
    with pytest.warns(UserWarning, match=r"Loading only the weights.*`learn.freeze_to\(1\)`"):
        learn.load('mid')  # with_opt=None: the weights, and the same hint
    learn.freeze_to(1); learn.load("mid", with_opt=True)
    learn.unfreeze(); learn.save('all')
    learn.freeze()
    with pytest.raises(CheckpointError, match=r"saved with every layer trainable: call `learn.unfreeze\(\)`"):
        learn.load('all', with_opt=True)
    learn.split(lambda m: (m[3],))  # another split: no freezing of this one fits, so no hint
    with pytest.raises(CheckpointError) as e:
        learn.load('mid', with_opt=True)
    assert 'before loading it' not in str(e.value)


@pytest.mark.parametrize('append_then,append_now', [(True, False), (True, True), (False, True), (False, False)])
def test_a_load_resume_keeps_the_csv_lines_before_the_interrupted_fit_whatever_append_says_now(tmp_path, append_then, append_now):
    "review 6 #11: a resume whose CSVLogger had append=False erased the rows of the fits before the interrupted one."
    import csv
    from fastbook_core.callback import Callback
    from fastbook_core.callbacks.csv_logger import CSVLogger
    from fastbook_core.test_utils import classif_learner
    import fastbook_core.train  # noqa: F401 (fit_one_cycle)
    def make():
        learn = classif_learner(); learn.path = tmp_path; return learn
    first = make(); first.fit(2, 1e-2, callbacks=[CSVLogger(first)])  # an earlier fit: its two rows
    learn = make()
    class SaveThenCrash(Callback):
        def on_epoch_end(self, epoch, **kwargs):
            if epoch == 1: learn.save('mid')
        def on_batch_end(self, iteration, train, **kwargs):
            if train and iteration == 2 * len(learn.data.train_dl) + 1: raise RuntimeError('crash')
    with pytest.raises(RuntimeError, match='crash'):
        learn.fit_one_cycle(3, 1e-2, callbacks=[CSVLogger(learn, append=append_then), SaveThenCrash()])
    again = make(); again.load('mid', with_opt=True)
    again.fit_one_cycle(3, 1e-2, start_epoch=2, callbacks=[CSVLogger(again, append=append_now)])
    rows = list(csv.reader(open(tmp_path / 'history.csv')))[1:]
    assert [r[0] for r in rows] == (['0', '1'] if append_then else []) + ['0', '1', '2']
    assert rows[-3:] == [list(r) for r in again.recorder.rows]


def test_start_epoch_and_a_track_epoch_file_that_disagree_are_refused(tmp_path):
    "review 6 #14: TrackEpochCallback announced epoch 2, and start_epoch=3 silently won."
    from fastbook_core.test_utils import classif_learner
    from fastbook_core.callbacks.tracker import TrackEpochCallback
    import fastbook_core.train  # noqa: F401 (fit_one_cycle)
    def make():
        learn = classif_learner(); learn.path = tmp_path; return learn
    first = make(); first.fit_one_cycle(2, 1e-2, callbacks=[TrackEpochCallback(first)])  # the file says epoch 1
    learn = make()
    w = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match=r"start_epoch=3, but a callback that runs before it \(TrackEpochCallback.*at epoch 2"):
        learn.fit_one_cycle(5, 1e-2, start_epoch=3, callbacks=[TrackEpochCallback(learn)])
    assert all((a == b).all() for a, b in zip(learn.model.parameters(), w))  # refused before any batch
    assert (tmp_path / 'models' / 'epoch').read_text() == '1'
    learn.fit_one_cycle(5, 1e-2, start_epoch=2, callbacks=[TrackEpochCallback(learn)])  # agreeing: runs epochs 2 to 4
    assert learn.recorder.nb_batches == [len(learn.data.train_dl)] * 3
    again = make()
    again.fit_one_cycle(6, 1e-2, start_epoch=3, callbacks=[TrackEpochCallback(again, epoch_offset=3)])  # the fix it names
    assert len(again.recorder.nb_batches) == 3


def test_a_fit_that_does_not_start_where_the_checkpoint_stopped_is_not_cut_short(tmp_path):
    "review 7 #1: load(mid-run, with_opt=True) then fit_one_cycle(4) put the schedule back mid-cycle: 13 of 24 batches ran."
    from fastbook_core.callback import Callback
    from fastbook_core.callbacks.tracker import SaveModelCallback
    from fastbook_core.test_utils import classif_learner
    import fastbook_core.train  # noqa: F401
    def make():
        learn = classif_learner(); learn.path = tmp_path; return learn
    class Cut(Callback):
        def on_epoch_begin(self, epoch, **kwargs):
            if epoch == 2: raise RuntimeError('power cut')
    first = make()
    with pytest.raises(RuntimeError):
        first.fit_one_cycle(4, 1e-2, callbacks=[SaveModelCallback(first, every='epoch', name='ck'), Cut()])
    n = len(first.data.train_dl)
    again = make(); again.load('ck_1', with_opt=True)
    with pytest.warns(UserWarning, match=r"starts at epoch 0 \(OneCycleScheduler starting afresh: a schedule put back at epoch 2 would end this fit early\).*start_epoch=2"):
        again.fit_one_cycle(4, 1e-2)
    assert again.recorder.nb_batches == [n] * 4
    resumed = make(); resumed.load('ck_1', with_opt=True)
    resumed.fit_one_cycle(4, 1e-2, start_epoch=2)  # the resume proper: its schedule goes on where it stood
    assert resumed.recorder.nb_batches[-2:] == [n, n]


@pytest.mark.parametrize('field,value,says', [
    ('opt_hypers', {'lr': [1e-3], 'mom': [0.9], 'beta': [0.99], 'wd': [-1.0]}, 'wd=[-1.0]'),
    ('opt_hypers', {'lr': [float('nan')], 'mom': [0.9], 'beta': [0.99], 'wd': [0.01]}, 'lr=[nan]'),
    ('opt_hypers', {'lr': 'fast', 'mom': [0.9], 'beta': [0.99], 'wd': [0.01]}, "lr='fast'"),
    ('epoch', -1, 'damaged epoch: -1'), ('epoch', '3', "damaged epoch: '3'"), ('epoch', True, 'damaged epoch: True'),
    ('iteration', -5, 'damaged iteration: -5'), ('rng', None, 'without its random states'),
    ('recorder', 'rows', 'rows holds something other than rows of text')])
def test_an_edited_checkpoint_is_refused_before_the_learner_changes(tmp_path, field, value, says):
    "review 7 #2 and #8: a negative wd was applied after the weights (a refused load changed the Learner); edited positions loaded."
    import torch
    from fastbook_core.test_utils import classif_learner
    from fastbook_core.torch_core import CheckpointError
    learn = classif_learner(); learn.path = tmp_path
    learn.fit(1, 1e-2); learn.save('good')
    state = torch.load(tmp_path / 'models' / 'good.pth', weights_only=True)
    if field == 'rng': del state['rng']
    elif field == 'recorder': state['recorder']['rows'] = ['x']
    else: state[field] = value
    torch.save(state, tmp_path / 'models' / 'bad.pth')
    other = classif_learner(); other.path = tmp_path; other.fit(1, 1e-3)
    before = {k: v.clone() for k, v in other.model.state_dict().items()}
    with pytest.raises(CheckpointError, match=re.escape(says)):
        other.load('bad', with_opt=True)
    assert all(torch.equal(before[k], v) for k, v in other.model.state_dict().items())  # all or nothing


def test_a_v1_resume_whose_epoch_weights_are_missing_is_refused_and_loads_the_optimizer_state(tmp_path):
    "review 7 #4 and #5: a missing ep_1.pth only warned (epochs 2-3 trained from random weights); the optimizer state was dropped."
    from fastbook_core.callback import Callback
    from fastbook_core.callbacks.tracker import SaveModelCallback, TrackEpochCallback
    from fastbook_core.test_utils import classif_learner
    from fastbook_core.torch_core import CheckpointError
    import fastbook_core.train  # noqa: F401
    def make():
        learn = classif_learner(); learn.path = tmp_path; return learn
    def cbs(learn): return [TrackEpochCallback(learn), SaveModelCallback(learn, every='epoch', name='ep')]
    class Cut(Callback):
        def on_epoch_begin(self, epoch, **kwargs):
            if epoch == 2: raise RuntimeError('power cut')
    first = make()
    with pytest.raises(RuntimeError): first.fit_one_cycle(4, 1e-2, callbacks=cbs(first) + [Cut()])
    steps = []
    class Steps(Callback):  # at the first epoch's start: after every jump_to_epoch, which follow the on_train_begins
        def on_epoch_begin(self, **kwargs):
            if not steps: steps.append([s['step'].item() for s in again.opt.opt.state.values()])
    again = make()
    again.fit_one_cycle(4, 1e-2, callbacks=cbs(again) + [Steps()])
    assert steps[0] and all(n == 2 * len(again.data.train_dl) for n in steps[0])  # Adam's state after the first two epochs
    (tmp_path / 'models' / 'epoch').write_text('1')
    (tmp_path / 'models' / 'ep_1.pth').unlink()
    lost = make()
    with pytest.raises(CheckpointError, match=r"says this fit starts at epoch 2, from the weights saved after epoch 1, and they cannot be loaded.*restart\(\)"):
        lost.fit_one_cycle(4, 1e-2, callbacks=cbs(lost))
    assert (tmp_path / 'models' / 'epoch').read_text() == '1'  # nothing trained, nothing advanced


def test_load_learner_with_a_model_that_does_not_fit_names_a_fix_it_takes(tmp_path):
    "review 7 #7: the error said 'Pass strict=False', which load_learner refuses."
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basic_data import DataBunch
    from fastbook_core.basic_train import Learner, load_learner
    from fastbook_core.torch_core import CheckpointError
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', path=tmp_path)
    Learner(data, nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), silent=True).export()
    with pytest.raises(CheckpointError, match='give it the model the export was made with') as e:
        load_learner(tmp_path, model=nn.Sequential(nn.Linear(3, 4)), loss_func=nn.CrossEntropyLoss())
    assert 'strict=False' not in str(e.value)


def test_a_start_epoch_fit_that_saves_every_epoch_still_runs_and_a_numpy_start_epoch_saves_loadable_files(tmp_path):
    "review 8: jump_to_epoch refused a fit given start_epoch= (no earlier file of its name); np.int64 epochs made files refused as damaged."
    import numpy as np
    import torch
    from fastbook_core.callbacks.tracker import SaveModelCallback
    from fastbook_core.test_utils import classif_learner
    from fastbook_core.torch_core import CheckpointError
    import fastbook_core.train  # noqa: F401
    learn = classif_learner(); learn.path = tmp_path
    with pytest.warns(UserWarning, match='Could not load run2_1'):
        learn.fit_one_cycle(4, 1e-2, start_epoch=np.int64(2), callbacks=[SaveModelCallback(learn, every='epoch', name='run2')])
    assert type(torch.load(tmp_path / 'models' / 'run2_3.pth', weights_only=True)['epoch']) is int
    for with_opt in (True, None, False): learn.load('run2_3', with_opt=with_opt)
    state = torch.load(tmp_path / 'models' / 'run2_3.pth', weights_only=True)
    torch.save({**state, 'epoch': np.int64(4).item() * -1}, tmp_path / 'models' / 'edited.pth')
    learn.load('edited', with_opt=False)  # the weights of a file with an edited position still load
    with pytest.raises(CheckpointError, match='cannot be resumed from: it has a damaged epoch: -4.*with_opt=False'):
        learn.load('edited', with_opt=True)
