"Learner beyond fit: predictions, TTA, summary, discriminative training, save/load/export, interpretation."
import os, pickle, re, subprocess, sys, warnings
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basics import *
from fastbook_core.basic_train import CheckpointError
from fastbook_core.test_utils import synth_learner, classif_learner, synth_classif_data
from fastbook_core.callbacks.tracker import EarlyStoppingCallback


@pytest.fixture(scope='module')
def trained():
    learn = classif_learner(metrics=[accuracy])
    learn.data.add_test(learn.data.valid_ds)
    learn.fit(2, 1e-2)
    return learn


@pytest.mark.parametrize('ds_type', [DatasetType.Train, DatasetType.Valid, DatasetType.Test, DatasetType.Fix])
def test_get_preds_on_each_set(trained, ds_type):
    preds, targs = trained.get_preds(ds_type)
    n = {DatasetType.Train: len(trained.data.train_dl) * 16, DatasetType.Fix: 160}.get(ds_type, 80)
    assert preds.shape == (n, 3) and targs.shape == (n,)
    assert torch.allclose(preds.sum(1), torch.ones(n), atol=1e-5)
    assert preds.device.type == 'cpu'


def test_get_preds_activations():
    learn = classif_learner()
    raw = learn.get_preds(activ=lambda x: x)[0]
    assert torch.allclose(learn.get_preds()[0], raw.softmax(1))
    learn.loss_func = nn.BCEWithLogitsLoss()
    assert torch.allclose(learn.get_preds()[0], raw.sigmoid())
    learn.loss_func = nn.functional.nll_loss
    assert torch.allclose(learn.get_preds()[0], raw.exp())
    reg = synth_learner()
    assert torch.equal(reg.get_preds()[0], reg.get_preds(activ=lambda x: x)[0])


def test_get_preds_with_loss_and_n_batch(trained):
    preds, targs, losses = trained.get_preds(with_loss=True)
    assert losses.shape == (80,)
    assert abs(losses.mean().item() - trained.validate()[0]) < 1e-5
    assert trained.get_preds(n_batch=1)[0].shape[0] == trained.data.valid_dl.batch_size == 16  # v1: val_bs defaults to bs
    with pytest.raises(ValueError, match='no Test set'): classif_learner().get_preds(DatasetType.Test)


def test_pred_batch_and_predict(trained):
    xb, yb = trained.data.one_batch(DatasetType.Valid)
    p = trained.pred_batch(batch=(xb, yb))
    assert torch.allclose(p, trained.get_preds()[0][:len(xb)], atol=1e-6)
    pred, idx, probs = trained.predict(xb[0])
    assert idx == p[0].argmax() and pred == int(idx) and torch.allclose(probs, p[0], atol=1e-6)


def test_tta(trained):
    preds, y = trained.get_preds()
    tp, ty = trained.TTA(augment=lambda x: x)
    assert torch.allclose(tp, preds, atol=1e-6) and torch.equal(ty, y)
    flipped = trained.TTA(augment=lambda x: -x, n=2, beta=0.25)[0]
    assert torch.allclose(flipped.sum(1), torch.ones(80), atol=1e-5)
    with pytest.raises(ValueError, match='pass `augment=`'): trained.TTA()  # tabular inputs: no default flip


def test_summary(trained):
    s = trained.summary()
    assert 'Layer (type)' in s and 'Output Shape' in s and 'Param #' in s and 'Trainable' in s
    assert 'Total params: 163' in s and 'Total trainable params: 163' in s and 'Total non-trainable params: 0' in s
    assert 'BatchNorm1d' in s and 'CrossEntropyLoss' in s and 'Adam' in s
    big = Learner(trained.data, nn.Sequential(nn.Linear(4, 1000), nn.Linear(1000, 3)), silent=True)
    big.split([big.model[1]]); big.freeze()
    s = big.summary()
    assert 'Total params: 8,003' in s and 'Total non-trainable params: 5,000' in s


def test_discriminative_lrs_reach_param_groups():
    learn = classif_learner()
    learn.split(lambda m: [m[3]])
    assert len(learn.layer_groups) == 2
    learn.fit(1, lr=slice(1e-4, 1e-2), wd=[0.1, 0.01])
    pgs = learn.opt.param_groups
    assert [pg['lr'] for pg in pgs] == pytest.approx([1e-4, 1e-4, 1e-2, 1e-2])
    assert learn.opt.read_val('weight_decay') == [0, 0]  # true wd: applied by the wrapper
    assert learn.opt._wd == [0.1, 0.01]
    learn.fit(1, lr=slice(1e-2))
    assert [pg['lr'] for pg in pgs[::2]] == pytest.approx([1e-3, 1e-2])
    with pytest.raises(ValueError, match='learning rate'): learn.fit(1, lr=-1.)
    with pytest.raises(ValueError, match='3 learning rates for 2 layer groups'): learn.fit(1, lr=[1e-3] * 3)


def test_freeze_train_bn():
    learn = classif_learner()
    learn.split([learn.model[3]]); learn.freeze()
    assert not learn.model[0].weight.requires_grad and learn.model[1].weight.requires_grad
    n_params = sum(len(pg['params']) for pg in learn.opt.param_groups)
    assert n_params == 4  # BatchNorm weight+bias, head weight+bias
    learn.train_bn = False; learn.freeze()
    assert not learn.model[1].weight.requires_grad
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())


def test_bn_wd_false_puts_biases_and_bn_in_no_decay_groups():
    learn = classif_learner(bn_wd=False)
    learn.fit(1)
    no_wd = learn.opt.param_groups[1]['params']
    assert {p.shape for p in no_wd} == {torch.Size([16]), torch.Size([3])}  # biases and BatchNorm


def test_save_load_roundtrip_and_paths(trained, tmp_path):
    p = trained.save('m', return_path=True)
    assert p == trained.path / 'models' / 'm.pth' and p.is_file()
    assert not list(p.parent.glob('.*.tmp'))
    state = torch.load(p, weights_only=True)
    assert set(state) >= {'model', 'opt', 'rng', 'recorder'}
    assert not any(k.startswith('module.') for k in state['model'])
    other = classif_learner()
    other.path = trained.path
    other.load('m')
    assert torch.allclose(other.get_preds()[0], trained.get_preds()[0])
    assert other.opt is not None and len(other.opt.state) > 0  # optimizer state restored
    trained.save('w', with_opt=False)
    assert set(torch.load(trained.path / 'models' / 'w.pth', weights_only=True)) == {'model'}
    with pytest.raises(CheckpointError, match='holds no optimizer state'): other.load('w', with_opt=True)


def test_load_errors_name_the_file(trained):
    with pytest.raises(CheckpointError, match=r'No file at .*missing\.pth'): trained.load('missing')
    p = trained.save('trunc', return_path=True)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r'trunc\.pth is incomplete or corrupt'): trained.load('trunc')
    p.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='incomplete or corrupt'): trained.load('trunc')
    wrong = Learner(trained.data, nn.Linear(4, 2), path=trained.path, silent=True)
    with pytest.raises(CheckpointError, match='does not fit this model'): wrong.load('m')


class Evil:
    def __reduce__(self): return (os.system, (f'touch {os.environ.get("EVIL_MARKER", "/tmp/fastbook_evil")}',))


def test_crafted_checkpoint_runs_no_code(trained, tmp_path, monkeypatch):
    marker = tmp_path / 'pwned'
    monkeypatch.setenv('EVIL_MARKER', str(marker))
    path = trained.path / 'models' / 'evil.pth'
    torch.save({'model': trained.model.state_dict(), 'x': Evil()}, path)
    with pytest.raises(CheckpointError, match='Refusing to load'): trained.load('evil')
    assert not marker.exists()
    # the same for an export: load_learner refuses, naming what it would run
    torch.save({'format': 'fastbook_core.export/1', 'state_dict': {}, 'classes': None, 'hypers': {},
                'objects': pickle.dumps(Evil())}, trained.path / 'evil.pkl')
    with pytest.raises(Exception): load_learner(trained.path, 'evil.pkl')
    assert not marker.exists()
    path2 = trained.path / 'evil2.pkl'
    torch.save(Evil(), path2)
    with pytest.raises(CheckpointError, match='Refusing'): load_learner(trained.path, 'evil2.pkl')
    assert not marker.exists()


def test_export_and_load_learner(trained):
    trained.export()
    inf = load_learner(trained.path, test=trained.data.valid_ds)
    assert torch.allclose(inf.get_preds(DatasetType.Test)[0], trained.get_preds()[0], atol=1e-6)
    assert inf.data.classes == [0, 1, 2]  # as they were (issue 26: an export writes what it reads back)
    x = trained.data.valid_ds[0][0]
    assert inf.predict(x)[1] == trained.predict(x)[1]
    assert inf.TTA(DatasetType.Test, augment=lambda x: x)[0].shape == (80, 3)
    with pytest.raises(ValueError, match='no training data'): inf.fit(1)


def test_export_refuses_lambdas_and_local_functions(trained, tmp_path):
    learn = classif_learner()
    def local_loss(out, targ): return nn.functional.cross_entropy(out, targ)
    learn.loss_func = local_loss
    with pytest.raises(TypeError, match='the loss function'): learn.export()
    learn = classif_learner(callback_fns=[lambda l: Callback()])
    with pytest.raises(TypeError, match='the callback function'): learn.export()
    assert not (learn.path / 'export.pkl').exists()


def test_interpretation(trained):
    interp = trained.interpret()
    cm = interp.confusion_matrix()
    assert cm.shape == (3, 3) and cm.sum() == 80
    preds, targs = trained.get_preds()
    manual = np.zeros((3, 3), dtype=int)
    for t, p in zip(targs, preds.argmax(1)): manual[t, p] += 1
    assert (cm == manual).all()
    vals, idx = interp.top_losses()
    assert len(vals) == 80 and (vals[:-1] >= vals[1:]).all()
    assert not hasattr(interp, 'inputs') and not any(isinstance(v, TensorDataset) for v in vars(interp).values())
    fig = interp.plot_confusion_matrix(return_fig=True, normalize=True)
    assert fig is not None


def test_purge_keeps_the_learners_own_callbacks():
    from fastbook_core.test_utils import classif_learner
    learn = classif_learner().to_fp16()
    learn.fit(1)
    learn.purge()
    assert learn.mp_cb is learn.mixed_precision and learn.opt is None   # v1's `mp_cb` survives; the optimizer goes
    learn.fit(1)


# --- issue 26: what the Learner writes it reads back; every setting works to the end -----------------------------
import io, warnings
from functools import partial
from pathlib import Path
from fastbook_core.callback import Callback


@pytest.mark.parametrize('kwargs', [dict(model_dir=Path('models')), dict(wd=np.float64(0.01)), dict(wd=np.float32(0.5)),
                                    dict(wd=np.int64(0)), dict(model_dir=Path('a') / 'b', wd=(0.01,))])
def test_export_writes_plain_values_that_load_learner_reads(kwargs):
    "26.1: a Path, numpy numbers and tuples that the constructor accepts come back from the safe load."
    learn = classif_learner(**kwargs)
    learn.fit(1)
    learn.export()
    inf = load_learner(learn.path)
    batch = (learn.data.valid_ds.tensors[0][:8], torch.zeros(8))
    assert torch.allclose(inf.pred_batch(batch=batch), learn.pred_batch(batch=batch))
    assert isinstance(inf.model_dir, str) and isinstance(inf.wd, (float, int, list))


def test_export_of_numpy_args_in_callback_fns_loads_without_trust_code():
    from fastbook_core.callbacks.tracker import EarlyStoppingCallback
    learn = classif_learner(callback_fns=[partial(EarlyStoppingCallback, patience=np.int64(2))])
    learn.export()
    inf = load_learner(learn.path)
    assert inf.callback_fns[-1].keywords == {'patience': 2} and type(inf.callback_fns[-1].keywords['patience']) is int


@pytest.mark.parametrize('model_dir', ['/abs/elsewhere', '../outside'])
def test_export_leaves_out_a_model_dir_outside_the_path_and_says_so(model_dir):
    "v1 on Kaggle sets `learn.model_dir = '/kaggle/working'`: the export is written without it, warned, and loads."
    learn = classif_learner(model_dir=model_dir)
    x, path = learn.data.valid_ds.tensors[0][:4], learn.path
    before = learn.pred_batch(batch=(x, torch.zeros(4)))
    with pytest.warns(UserWarning, match=rf"model_dir='{re.escape(model_dir)}' is outside the Learner's path.*load_learner\(path, file, model_dir="):
        learn.export(destroy=True)
    inf = load_learner(path)
    assert inf.model_dir == 'models'
    torch.testing.assert_close(inf.pred_batch(batch=(x, torch.zeros(4))), before)
    assert load_learner(path, model_dir=model_dir).model_dir == model_dir  # where the warning says to give it


def test_export_keeps_the_classes_as_they_were():
    learn = classif_learner()
    learn.data.classes = [10, 20, 30]
    learn.export()
    assert load_learner(learn.path).data.classes == [10, 20, 30]
    learn.data.classes = np.array(['a', 'b', 'c'])
    learn.export()
    assert load_learner(learn.path).data.classes == ['a', 'b', 'c']


class Counted(Callback):
    "A callback with a state and a key that tells instances apart."
    def __init__(self, name: str, n: int = 0): self.name, self.n = name, n
    def on_batch_end(self, train, **kwargs):
        if train: self.n += 1
    def checkpoint_state(self): return {'n': self.n}
    def load_checkpoint_state(self, state): self.n = state['n']
    def on_train_begin(self, **kwargs): pass
    @property
    def state_key(self): return f'Counted[name={self.name}]'


def test_callback_states_go_to_the_callback_of_their_key_whatever_the_order(tmp_path):
    "26.3: states are matched by state key, not by class and position."
    learn = synth_learner()
    a, b = Counted('a'), Counted('b', n=100)
    learn.fit(1, callbacks=[a, b])
    learn.save('two')
    new = synth_learner(model=type(learn.model)())
    new.path = learn.path
    new.load('two', with_opt=True)
    b2, a2 = Counted('b'), Counted('a')
    new.fit(1, callbacks=[b2, a2])
    assert (a2.n, b2.n) == (a.n + a.n, b.n + a.n)  # each resumed from its own count, then counted one more epoch


class Saver(Callback):
    "Stands for a callback that saves checkpoints during a fit (SaveModelCallback, BackupAndRestore)."
    saves_checkpoints = True
    def on_epoch_end(self, **kwargs): pass


def test_two_callbacks_with_one_key_are_refused_when_the_fit_begins_and_an_ambiguous_resume_is_refused():
    learn = synth_learner()
    with pytest.raises(ValueError, match=r"under the key 'Counted\[name=x\]'.*override `state_key`"):
        learn.fit(1, callbacks=[Counted('x'), Counted('x'), Saver()])
    assert not hasattr(learn, 'recorder')  # refused before the first batch: nothing trained, nothing recorded
    learn.fit(1, callbacks=[Counted('x'), Counted('x')])  # nothing saves during this fit: it trains
    with pytest.raises(ValueError, match=r"under the key 'Counted\[name=x\]'"): learn.save('two')  # its save is refused
    assert not (learn.path / learn.model_dir / 'two.pth').exists()
    learn.fit(1, callbacks=[Counted('x')])
    learn.save('one')
    learn.load('one', with_opt=True)
    n_losses = len(learn.recorder.losses)
    with pytest.raises(ValueError, match='does not guess'):
        learn.fit(1, callbacks=[Counted('x'), Counted('x')])
    assert len(learn.recorder.losses) == n_losses  # refused before training


def test_a_non_strict_load_that_matches_no_key_is_an_error_and_a_partial_one_warns(tmp_path):
    "26.4"
    learn = classif_learner()
    torch.save({'foo': torch.ones(1)}, tmp_path / 'foo.pth')
    w = learn.model[0].weight.detach().clone()
    with pytest.raises(CheckpointError, match='shares no key'):
        learn.load(tmp_path / 'foo.pth', strict=False)
    assert torch.equal(learn.model[0].weight, w)
    part = {k: v for k, v in learn.model.state_dict().items() if k.startswith('0.')}
    torch.save(part, tmp_path / 'part.pth')
    with pytest.warns(UserWarning, match=r'without the \d+ key\(s\).*3\.weight'):
        learn.load(tmp_path / 'part.pth', strict=False)


def test_module_prefixed_keys_suggest_remove_module(tmp_path):
    learn = classif_learner()
    torch.save({'module.' + k: v for k, v in learn.model.state_dict().items()}, tmp_path / 'ddp.pth')
    with pytest.raises(CheckpointError, match='remove_module=True') as e:
        learn.load(tmp_path / 'ddp.pth')
    assert 'Pass strict=False' not in str(e.value)
    learn.load(tmp_path / 'ddp.pth', remove_module=True)


def test_a_fit_with_no_training_batch_is_refused_before_anything_changes():
    "26.5: `data.batch_size = 1000` on 512 items (the DataBunch may refuse it itself: either way, no silent fit)."
    learn = classif_learner()
    learn.fit(1)
    n_losses, w = len(learn.recorder.losses), learn.model[0].weight.detach().clone()
    data = synth_classif_data(n_train=512)
    learn.data = data
    with pytest.raises(ValueError, match='batch_size=1000: the training set has 512 items'): data.batch_size = 1000  # refused at once
    # a loader that yields no batch, however it was made: fit, fit_one_cycle and lr_find refuse it, saying why
    learn.data.train_dl.dl = DataLoader(learn.data.train_ds, batch_size=1000, drop_last=True)
    for run in (lambda: learn.fit(1), lambda: learn.fit_one_cycle(1), lambda: learn.lr_find()):
        with pytest.raises(ValueError, match='yields no batch: 512 items with batch size 1000'): run()
    assert len(learn.recorder.losses) == n_losses and torch.equal(learn.model[0].weight, w)


def test_integer_targets_for_bce_name_the_dtype_and_the_loss():
    "26.7a"
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32, 1))
    learn = Learner(DataBunch.create(TensorDataset(x, y), None, bs=8, device='cpu'), nn.Linear(3, 1),
                    loss_func=nn.BCEWithLogitsLoss(), silent=True)
    with pytest.raises(RuntimeError) as e:
        learn.fit(1)
    note = ' '.join(getattr(e.value, '__notes__', []))
    assert 'int64' in note and 'BCEWithLogitsLoss' in note and 'float' in note


def test_items_of_three_name_the_layout_the_loop_expects():
    "26.7b"
    x1, x2, y = torch.randn(32, 2), torch.randn(32, 2), torch.randn(32, 1)
    learn = Learner(DataBunch.create(TensorDataset(x1, x2, y), TensorDataset(x1, x2, y), bs=8, device='cpu'),
                    nn.Linear(2, 1), silent=True)
    with pytest.raises(ValueError, match=r'\(\(x1, x2\), y\)'):
        learn.fit(1)
    with pytest.raises(ValueError, match=r'\(\(x1, x2\), y\)'):
        learn.validate()


def test_stop_training_from_on_train_begin_runs_no_epoch():
    "26.8"
    class StopAtOnce(Callback):
        def on_train_begin(self, **kwargs): return {'stop_training': True}
        def on_epoch_begin(self, **kwargs): self.epochs = getattr(self, 'epochs', 0) + 1
        def on_train_end(self, exception, **kwargs): self.ended = exception
    learn, cb = synth_learner(), StopAtOnce()
    w = learn.model.a.detach().clone()
    learn.fit(3, callbacks=[cb])
    assert not hasattr(cb, 'epochs') and cb.ended is False and torch.equal(learn.model.a, w)
    assert learn.recorder.nb_batches == [] and learn.recorder.val_losses == []


# --- issue 27 (6) and (2), issue 30 -------------------------------------------------------------------------

def test_destroy_as_in_v1(capsys):
    "27.6: afterwards every method is a no-op and every attribute None, each saying so; a second destroy says so too."
    learn = synth_learner()
    learn.destroy()
    assert 'self-destroyed' in capsys.readouterr().out
    assert learn.fit(1) is None and 'this object has been destroyed' in capsys.readouterr().out
    assert learn.model is None and 'this object has been destroyed' in capsys.readouterr().out
    assert learn.destroy() is None and 'this object has been destroyed' in capsys.readouterr().out
    assert isinstance(learn, Learner) and repr(learn) == 'DestroyedLearner()'


def test_add_metrics_is_importable_from_basic_train():
    "27.2: v1's basic_train module namespace held add_metrics."
    from fastbook_core.basic_train import add_metrics
    assert add_metrics([0.5], 0.25) == {'last_metrics': [0.5, 0.25]}


def test_the_metrics_plot_is_per_epoch_on_its_x_axis():
    "30: metrics are computed once per epoch, and the x-axis says so."
    import matplotlib; matplotlib.use('Agg')
    learn = classif_learner(metrics=[accuracy])
    learn.fit(3)
    ax = learn.recorder.plot_metrics(return_fig=True).axes[0]
    assert ax.get_xlabel() == 'Epoch' and list(ax.lines[0].get_xdata()) == [1, 2, 3]


def test_a_weight_decay_per_layer_group_comes_back_from_an_export():
    "The export keeps the split (by the modules' names): the Learner it gives has the groups and the per-group values."
    learn = classif_learner()
    learn.split(lambda m: [m[3]])
    learn.wd = [np.float32(0.01), np.float64(0.02)]
    learn.fit(1)
    learn.export()
    inf = load_learner(learn.path)
    assert inf.wd == [pytest.approx(0.01), 0.02] and len(inf.layer_groups) == 2


def test_a_checkpoint_saved_before_any_fit_loads_back_with_opt():
    learn = classif_learner()
    learn.save('init')
    new = classif_learner(); new.path = learn.path
    new.load('init', with_opt=True)
    new.fit(1)
    with pytest.raises(CheckpointError, match='saved with with_opt=False'):
        learn.save('bare', with_opt=False); new.load('bare', with_opt=True)


def test_a_resume_restores_the_optimizer_hyper_parameters():
    "N6 of the round trips: after fit_one_cycle, save, load(with_opt=True): the lr and momentum where the cycle left them."
    learn = classif_learner()
    learn.fit_one_cycle(1, 0.1)
    learn.save('c')
    new = classif_learner(); new.path = learn.path
    new.load('c', with_opt=True)
    assert (new.opt.lr, new.opt.mom) == (pytest.approx(learn.opt.lr), pytest.approx(learn.opt.mom))
    assert new.opt.read_val('lr') == pytest.approx(learn.opt.read_val('lr'))


def test_callback_fns_with_simple_names_export_and_paths_are_refused_before_writing():
    "v1's everyday `partial(CSVLogger, filename='history')` loads back safely; a path in it is refused at export."
    from fastbook_core.callbacks.csv_logger import CSVLogger
    learn = classif_learner(callback_fns=[partial(CSVLogger, filename='history')])
    learn.export()
    assert load_learner(learn.path).callback_fns[-1].keywords == {'filename': 'history'}
    (learn.path / 'export.pkl').unlink()
    learn.callback_fns[-1] = partial(CSVLogger, filename='logs/history')  # below learn.path: it loads back too
    learn.export()
    assert load_learner(learn.path).callback_fns[-1].keywords == {'filename': 'logs/history'}
    (learn.path / 'export.pkl').unlink()
    learn.callback_fns[-1] = partial(CSVLogger, filename='../elsewhere/history')
    with pytest.raises(ValueError, match="CSVLogger has filename='../elsewhere/history', which a safe load cannot read back"):
        learn.export(destroy=True)
    assert not (learn.path / 'export.pkl').exists() and isinstance(learn.model, nn.Module)


def test_numpy_numbers_in_a_callback_state_load_back():
    class NumpyState(Callback):
        def __init__(self): self.x = np.float64(1.5)
        def checkpoint_state(self): return {'x': self.x, 'xs': (np.int64(1), 2)}
        def load_checkpoint_state(self, state): self.x, self.xs = state['x'], state['xs']
    learn = synth_learner()
    learn.fit(1, callbacks=[NumpyState()])
    learn.save('np')
    new = synth_learner(); new.path = learn.path
    new.load('np', with_opt=True)
    cb = NumpyState(); cb.x = None
    new.fit(1, callbacks=[cb])
    assert (cb.x, cb.xs) == (1.5, (1, 2)) and type(cb.x) is float


def test_a_checkpoint_loaded_and_saved_again_before_a_fit_keeps_the_callback_states():
    learn = synth_learner()
    learn.fit(1, callbacks=[Counted('a', n=5)])
    learn.save('first')
    copy = synth_learner(); copy.path = learn.path
    copy.load('first', with_opt=True)
    copy.save('second')
    again = synth_learner(); again.path = learn.path
    again.load('second', with_opt=True)
    cb = Counted('a')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the stage's fit was complete: no "saved after 1 epochs" warning
        again.fit(1, callbacks=[cb])
    assert cb.n == 5 + 10 + 10
    assert torch.load(learn.path / learn.model_dir / 'second.pth', weights_only=True)['fit_complete'] is True


def test_a_resumed_fit_without_the_saved_callbacks_says_so_and_forgets_them():
    learn = synth_learner()
    learn.fit(1, callbacks=[Counted('a', n=5)])
    learn.save('ck')
    again = synth_learner(); again.path = learn.path
    again.load('ck', with_opt=True)
    with pytest.warns(UserWarning, match=r'Counted\[name=a\]'):
        again.fit(1)
    cb = Counted('a')
    again.fit(1, callbacks=[cb])
    assert cb.n == 10  # a later fit starts afresh


def test_a_stage_saved_after_its_fit_loads_without_the_resume_warning():
    "A checkpoint saved after its fit ran all its epochs is a stage: the next fit starts at epoch 0 without a warning."
    import warnings
    from fastbook_core.callbacks.tracker import SaveModelCallback
    learn = synth_learner()
    learn.fit(3, callbacks=[SaveModelCallback(learn)]); learn.save('stage-1'); learn.load('stage-1', with_opt=True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        learn.fit(2, callbacks=[SaveModelCallback(learn)])
    interrupted = synth_learner()
    interrupted.fit(4, callbacks=[SaveModelCallback(interrupted, every='epoch', name='ck')])
    interrupted.load('ck_1', with_opt=True)  # saved after epoch 2 of 4: an interrupted fit, resumed at epoch 0
    with pytest.warns(UserWarning, match='saved after 2 epochs, and this fit starts at epoch 0'):
        interrupted.fit(4, callbacks=[SaveModelCallback(interrupted, every='epoch', name='ck')])


def test_a_silent_learner_s_lr_plot_prints_no_suggestion():
    import contextlib, io
    import matplotlib; matplotlib.use('Agg')
    for silent, printed in ((True, ''), (False, 'Min numerical gradient')):
        learn = synth_learner(silent=silent)
        learn.lr_find(num_it=30)
        out = io.StringIO()
        with contextlib.redirect_stdout(out): learn.recorder.plot(suggestion=True, skip_start=0, skip_end=0)
        assert (printed in out.getvalue()) if printed else out.getvalue() == ''
        assert learn.recorder.min_grad_lr > 0


def test_a_strict_load_whose_shapes_clash_names_the_clash_not_strict_false():
    "Where a common key has another shape, strict=False would fail too: the error names the shape, not that advice."
    learn = synth_learner(model=nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)))
    learn.save('bn', with_opt=False)
    other = synth_learner(model=nn.Sequential(nn.Linear(1, 4), nn.Linear(4, 1)))
    other.path = learn.path
    with pytest.raises(CheckpointError, match=r'1\.weight has shape \(4,\) in the file and \(1, 4\) in the model') as e:
        other.load('bn')
    assert 'strict=False' not in str(e.value)


def test_a_file_open_in_text_mode_is_refused_saying_to_open_it_in_binary(tmp_path):
    learn = synth_learner()
    for op in (learn.save, learn.export, learn.load):
        with open(tmp_path / 't.txt', 'w') as fh:
            with pytest.raises(ValueError, match=r"open in text mode.*binary mode \('wb' to save or export, 'rb' to load\)"): op(fh)


def test_split_keeps_the_optimizer_as_v1():
    "fastai v1's `split` re-splits the layer groups and keeps `learn.opt`; `freeze`/`unfreeze`/`create_opt` make a new one."
    learn = classif_learner()
    learn.fit(1, 1e-2)
    opt, state = learn.opt, {k: v.clone() for k, v in learn.opt.state_dict()['state'][0].items()}
    assert learn.split(lambda m: [m[3]]) is learn and len(learn.layer_groups) == 2
    assert learn.opt is opt and torch.equal(learn.opt.state_dict()['state'][0]['exp_avg'], state['exp_avg'])
    learn.fit(1, 1e-3)  # one lr for every group of the kept optimizer
    with pytest.raises(ValueError, match='List len mismatch'): learn.fit(1, slice(1e-4, 1e-2))  # as v1: the kept opt has one group
    learn.unfreeze()
    assert learn.opt is not opt and len(learn.opt.param_groups) == 4
    learn.fit(1, slice(1e-4, 1e-2))


def test_load_of_an_export_file_says_it_is_one_and_names_load_learner():
    learn = synth_learner()
    learn.export('x.pkl')
    with pytest.raises(CheckpointError, match=r"x.pkl is an export .*`load_learner\(learn.path, 'x.pkl'\)` reads it"):
        learn.load('x.pkl')
    learn.export()
    with pytest.raises(CheckpointError, match=r"`load_learner\(learn.path, 'export.pkl'\)`"): learn.load('export')
    (learn.path / learn.model_dir).mkdir(exist_ok=True)
    (learn.path / 'x.pkl').rename(learn.path / learn.model_dir / 'y.pth')
    with pytest.raises(CheckpointError, match='is an export'): learn.load('y')  # found as a checkpoint's name, read, then named
    with pytest.raises(CheckpointError, match='No file at'): learn.load('nothing')


def test_export_keeps_the_recorders_add_time_and_silent():
    from fastbook_core.checkpoint import export_bytes
    for add_time, silent in [(False, True), (True, False), (False, None)]:
        learn = synth_learner(add_time=add_time, silent=silent)
        learn.export()
        inf = load_learner(learn.path)
        rec = inf.callback_fns[0]
        assert (rec.keywords['add_time'], rec.keywords['silent']) == (add_time, learn.silent)
        assert (inf.add_time, inf.silent) == (add_time, learn.silent)
    learn = synth_learner(add_time=False, silent=True)
    old = {k: getattr(learn, k) for k in ('true_wd', 'bn_wd', 'wd', 'train_bn', 'model_dir')}  # an export written before
    (learn.path / 'old.pkl').write_bytes(export_bytes(learn.model, learn.loss_func, learn.opt_func, [], [], [], None, old))
    inf = load_learner(learn.path, 'old.pkl')
    assert (inf.add_time, inf.silent) == (True, defaults.silent)  # the defaults, as before


def test_a_callback_state_that_is_not_plain_data_names_the_key_path_and_the_type():
    class MyCallback(Callback):
        def __init__(self, state): self.state = state
        def checkpoint_state(self): return self.state
    learn = synth_learner()
    for state, where in [({'best': np.random.default_rng(0)}, r"MyCallback.state\['best'\]: a numpy.random.Generator"),
                         ({'h': [1, {'x': object()}]}, r"MyCallback.state\['h'\]\[1\]\['x'\]: an object"),
                         ({3: 1}, r"MyCallback.state\[3\] \(a key\): an int as a dict key; give the dicts that checkpoint_state returns str keys"),
                         ([1, 2], r"MyCallback.state: a list")]:
        learn.fit(1, callbacks=[MyCallback(state)])
        key = 'a key' in where  # a key is named as a key (trial 15): the advice is str keys, not plain values
        with pytest.raises(ValueError, match=where if key else where + ', not plain data; return plain numbers, strings, lists, dicts or tensors'):
            learn.save('odd')
        assert not (learn.path / learn.model_dir / 'odd.pth').exists()


def test_two_identical_trackers_fit_without_a_saver_and_are_refused_before_any_batch_with_one():
    "v1 programs pass one tracker twice (callback_fns and callbacks=) and never save: they train as in v1."
    seen = []
    class Batches(Callback):
        def on_batch_begin(self, **kwargs): seen.append(1)
    learn = synth_learner(callback_fns=[partial(EarlyStoppingCallback, patience=3)])
    learn.fit(2, callbacks=[EarlyStoppingCallback(learn, patience=3), Batches()])
    assert len(learn.recorder.val_losses) == 2 and seen
    seen.clear()
    n_losses = len(learn.recorder.losses)
    with pytest.raises(ValueError, match=r"under the key 'EarlyStoppingCallback\[monitor=valid_loss\]'"):
        learn.fit(1, callbacks=[EarlyStoppingCallback(learn, patience=3), Batches(), Saver()])
    assert seen == [] and len(learn.recorder.losses) == n_losses  # refused before the first batch
    with pytest.raises(ValueError, match='under the key'): learn.save('s')  # and a save is refused, as before


def test_a_weights_only_load_drops_what_an_earlier_resume_load_left_for_the_next_fit():
    "B1: load(A, with_opt=True), then load(B): the next fit starts fresh trackers on B, not A's best or A's history."
    learn = synth_learner()
    learn.fit(3, lr=1e-2, callbacks=[EarlyStoppingCallback(learn, patience=5)])
    learn.save('A')
    other = synth_learner(model=type(learn.model)())
    other.path = learn.path
    other.save('B')
    for load_b in [dict(), dict(with_opt=False)]:
        new = synth_learner(model=type(learn.model)())
        new.path = learn.path
        new.load('A', with_opt=True)
        assert new._resume_states and len(new.recorder.val_losses) == 3
        new.load('B', **load_b)
        assert new._resume_states is None and new._resume_epoch is None and not hasattr(new, 'recorder')
        es = EarlyStoppingCallback(new, patience=0)
        new.fit(1, callbacks=[es])
        assert es.best == new.recorder.val_losses[0]  # this fit's own best, not A's


def test_a_load_inside_a_resumed_fit_keeps_the_pending_states():
    "A callback's weights-only load at the start of a resumed fit (SaveModelCallback(every='epoch')) is part of the resume."
    learn = synth_learner()
    learn.fit(1, callbacks=[Counted('a', n=7)])
    learn.save('ck')
    class LoadsFirst(Callback):
        _order = -100
        def on_train_begin(self, **kwargs): learn.load('ck', with_opt=False)
    learn.load('ck', with_opt=True)
    a = Counted('a')
    learn.fit(1, callbacks=[LoadsFirst(), a])
    assert a.n > 7  # resumed from the saved count


@pytest.mark.parametrize('kw', [dict(with_opt=1), dict(with_opt='yes'), dict(with_opt=0), dict(strict='False'),
                                dict(strict=None), dict(purge=1), dict(remove_module='no')])
def test_load_flags_must_be_bools(tmp_path, kw):
    "B8: an int or a string flag (from argparse) is refused by name, not taken for a partial resume."
    learn = synth_learner()
    learn.fit(1)
    learn.save('ck')
    name = next(iter(kw))
    with pytest.raises(TypeError, match=rf"{name}=.* is not a bool: pass {name}=True or {name}=False"): learn.load('ck', **kw)
    with pytest.raises(TypeError, match="with_opt=1 .* is not a bool"): learn.save('x', with_opt=1)


def test_numpy_bool_flags_are_bools():
    learn = synth_learner()
    learn.fit(1, callbacks=[Counted('a', n=3)])
    learn.save('ck', with_opt=np.True_)
    learn.load('ck', with_opt=np.True_, strict=np.True_)
    assert learn._resume_states == {'Counted[name=a]': {'n': 3 + len(learn.recorder.losses)}}


def test_export_refuses_a_callback_it_cannot_make_again_before_writing_or_destroying(tmp_path):
    "B2/B3: a callback of `learn.callbacks` comes back from load_learner identical, or export refuses it by name."
    from fastbook_core.callbacks.one_cycle import OneCycleScheduler
    from fastbook_core.callbacks.tracker import SaveModelCallback, TrackEpochCallback
    cases = [(lambda l: OneCycleScheduler(l, slice(1e-3, 1e-2)), r"OneCycleScheduler has lr_max=slice\(0.001, 0.01"),
             (lambda l: SaveModelCallback(l, name='../best'), r"SaveModelCallback has name='\.\./best'")]
    for make, msg in cases:
        learn = synth_learner()
        learn.path = tmp_path
        learn.callbacks.append(make(learn))
        w = {k: v.clone() for k, v in learn.model.state_dict().items()}
        for destroy in (False, True):
            with pytest.raises(ValueError, match=msg + r".*Remove it from `learn.callbacks` before exporting"):
                learn.export('e.pkl', destroy=destroy)
        assert not (tmp_path / 'e.pkl').exists() and all(torch.equal(v, learn.model.state_dict()[k]) for k, v in w.items())
    learn = synth_learner()
    learn.path = tmp_path
    learn.callbacks += [TrackEpochCallback(learn, name='myepoch'), SaveModelCallback(learn, name='best', monitor='train_loss'),
                        OneCycleScheduler(learn, learn.lr_range(slice(1e-3, 1e-2)), moms=(0.9, 0.8))]
    before = {k: v for k, v in vars(learn).items()}
    learn.export('ok.pkl')
    assert {k: v for k, v in vars(learn).items()} == before  # making a callback again at export did not touch the Learner
    back = load_learner(tmp_path, 'ok.pkl').callbacks
    assert [type(c) for c in back] == [type(c) for c in learn.callbacks]
    assert back[0].path == learn.callbacks[0].path and back[0].name == 'myepoch' and (back[1].name, back[1].monitor) == ('best', 'train_loss')
    assert back[2].moms == (0.9, 0.8) and np.allclose(back[2].lr_max, learn.callbacks[2].lr_max)


class _MainNet(nn.Module):
    "A model class outside the trusted modules (as `__main__.MyNet` is for a script)."
    def __init__(self): super().__init__(); self.lin = nn.Linear(1, 1)
    def forward(self, x): return self.lin(x)


def test_load_learner_with_a_model_but_no_loss_says_to_pass_the_loss_too(tmp_path):
    "E1: the model's class is refused although `model=` was given: the message names `loss_func=`, which avoids unpickling."
    learn = synth_learner(model=_MainNet())
    learn.path = tmp_path
    learn.export()
    with pytest.raises(CheckpointError, match=r"_MainNet.*You passed `model=`: pass `loss_func=` too"):
        load_learner(tmp_path, model=_MainNet())
    inf = load_learner(tmp_path, model=_MainNet(), loss_func=learn.loss_func)
    assert torch.equal(inf.model.lin.weight, learn.model.lin.weight)


def test_load_learner_kwargs_replace_the_exported_metrics_callback_fns_and_opt_func(tmp_path):
    "E6: not a raw 'multiple values for keyword argument'."
    learn = synth_learner(metrics=[mean_squared_error])
    learn.path = tmp_path
    learn.export()
    inf = load_learner(tmp_path, metrics=[mean_absolute_error], callback_fns=[], opt_func=torch.optim.SGD)
    assert inf.metrics == [mean_absolute_error] and inf.opt_func is torch.optim.SGD
    assert [getattr(f, 'func', f) for f in inf.callback_fns] == [Recorder]
    assert load_learner(tmp_path).metrics == [mean_squared_error]  # the file's, when none are given
    with pytest.raises(TypeError, match="load_learner makes the Learner's data"): load_learner(tmp_path, data=learn.data)


def test_load_learner_given_the_file_as_path_says_which_is_which(tmp_path):
    "E4: v1's habit `load_learner(path/'export.pkl')`."
    learn = synth_learner()
    learn.path = tmp_path
    learn.export()
    with pytest.raises(CheckpointNotFoundError, match=rf"`path` is the folder of the export and `file` its name.*load_learner\('{tmp_path}', 'export.pkl'\)"):
        load_learner(tmp_path / 'export.pkl')
    with pytest.raises(CheckpointNotFoundError) as e: load_learner(tmp_path, 'other.pkl')
    assert '`path` is the folder' not in str(e.value)


def test_a_save_after_purge_warns_and_its_file_is_no_full_resume():
    "B9: purge() then save(): the file has a history but no optimizer state; with_opt=True refuses it, weights-only loads it."
    learn = synth_learner()
    learn.fit(2, callbacks=[EarlyStoppingCallback(learn, patience=5)])
    learn.purge()
    with pytest.warns(UserWarning, match=r"without an optimizer state \(none after `purge\(\)`\)"): learn.save('s')
    with pytest.raises(CheckpointError, match="saved after training but holds no optimizer state.*with_opt=False"):
        learn.load('s', with_opt=True)
    learn.load('s', with_opt=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        synth_learner().save('fresh')  # nothing trained, no optimizer: no warning


def test_a_stage_ended_by_early_stopping_is_complete_and_the_next_fit_is_not_told_to_skip_epochs():
    "E3: fit_complete is True when a callback ended the fit; only an interrupted fit says where to resume."
    learn = synth_learner()
    learn.fit(10, lr=0.1, callbacks=[EarlyStoppingCallback(learn, patience=0, min_delta=100.)])
    assert len(learn.recorder.val_losses) < 10
    learn.save('stage1')
    assert torch.load(learn.path / learn.model_dir / 'stage1.pth', weights_only=True)['fit_complete'] is True
    new = synth_learner(model=type(learn.model)())
    new.path = learn.path
    new.load('stage1', with_opt=True)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        new.fit(2, lr=0.01, callbacks=[EarlyStoppingCallback(new, patience=5)])
    assert not [w for w in ws if 'start_epoch' in str(w.message)] and len(new.recorder.val_losses) == 2
    class Stop(Callback):
        def on_epoch_end(self, epoch, **kwargs):
            if epoch == 1: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): learn.fit(5, callbacks=[Stop()])
    learn.save('interrupted')
    assert torch.load(learn.path / learn.model_dir / 'interrupted.pth', weights_only=True)['fit_complete'] is False


def test_save_records_the_fit_before_an_lr_find_sweep():
    "B5 (with cbs26's lr_find, which marks its sweep's Recorder with `_before_lr_find`): save writes the real fit's history."
    learn = synth_learner()
    learn.fit(3, 0.1, callbacks=[EarlyStoppingCallback(learn, patience=5)])
    before = learn.recorder
    learn.fit(1)  # stands for the sweep: a Recorder of its own
    learn.recorder._before_lr_find = before
    st = torch.load(learn.save('s', return_path=True), weights_only=True)
    assert st['epoch'] == 3 and st['fit_complete'] and len(st['recorder']['val_losses']) == 3
    learn.recorder._before_lr_find = None  # a sweep on a Learner that had not trained
    st = torch.load(learn.save('s', return_path=True), weights_only=True)
    assert st['recorder'] is None and st['epoch'] == 0


@pytest.mark.parametrize('kw', [dict(add_time=1), dict(train_bn=0), dict(silent=0), dict(true_wd=np.True_)])
def test_export_takes_a_zero_or_one_flag_the_constructor_took_as_a_bool(tmp_path, kw):
    "E2: a setting that trains goes through export; it comes back as the bool it stood for."
    learn = synth_learner(**kw)
    learn.path = tmp_path
    learn.export()
    (k, v), = kw.items()
    back = getattr(load_learner(tmp_path), k)
    assert back is bool(v)


def test_a_model_dir_that_is_not_a_folder_is_refused_at_export_and_names_the_fix(tmp_path):
    learn = synth_learner()
    learn.model_dir = 3  # set after construction, which refuses it
    with pytest.raises(ValueError, match=r"is not a folder inside the Learner's path.*Set `learn.model_dir` to a folder inside"):
        learn.export()
    learn.model_dir = 'models'
    learn.export()


def test_the_resume_warning_of_a_plain_fit_says_how_to_resume_with_fit(tmp_path):
    "E8: an interrupted fit resumed with fit: the warning names TrackEpochCallback(learn, epoch_offset=...)."
    learn = synth_learner()
    class Stop(Callback):
        def on_epoch_end(self, epoch, **kwargs):
            if epoch == 1: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): learn.fit(4, callbacks=[Stop(), Counted('c')])
    learn.save('i')
    learn.load('i', with_opt=True)
    with pytest.warns(UserWarning, match=r"pass start_epoch=2 to fit_one_cycle, or give fit callbacks=\[TrackEpochCallback\(learn, epoch_offset=2\)\]"):
        learn.fit(1, callbacks=[Counted('c')])


def test_other_tools_checkpoints_and_checkpoints_given_to_load_learner_name_the_way_to_read_them(tmp_path):
    "E7/E9: a Lightning-style dict names its state-dict entry; load_learner on a checkpoint names learn.load."
    learn = synth_learner()
    learn.path = tmp_path
    (tmp_path / 'models').mkdir()
    f = tmp_path / 'models' / 'lightning.pth'
    torch.save({'state_dict': learn.model.state_dict(), 'epoch': 3}, f)
    with pytest.raises(CheckpointError, match=r"keys 'state_dict', 'epoch'; 'state_dict' looks like a state dict: "
                                              r"`learn.model.load_state_dict\(torch.load\(f, weights_only=True\)\['state_dict'\]\)`"):
        learn.load('lightning')
    learn.model.load_state_dict(torch.load(f, weights_only=True)['state_dict'])  # the way the message names works
    learn.save('ck')
    with pytest.raises(CheckpointError, match=r"it is a checkpoint, which `learn.load\(...\)` reads"):
        load_learner(tmp_path / 'models', 'ck.pth')
