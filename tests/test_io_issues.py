"""Edge cases of issues 26 and 27 in the core modules: the initial state dict as v1's (27.3), batch sizes checked
wherever they change (26.5), one-cycle warm-up on very few batches (26.6), fastai v1 checkpoints holding numpy
numbers (27.5), `add_metrics`'s import paths (27.2)."""
import numpy as np, pytest, torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch, DeviceDataLoader
from fastbook_core.callback import Callback, CallbackHandler
from fastbook_core.test_utils import synth_learner
import fastbook_core.train  # noqa: F401  (fit_one_cycle)
from fastbook_core.torch_core import CheckpointError, load_checkpoint, unpickle_blob


class KeysSeen(Callback):
    "Record the state keys each event receives; read `last_metrics` the way v1 callbacks do."
    def __init__(self): self.seen, self.read = {}, []
    def _rec(self, e, kw): self.seen.setdefault(e, set(kw))
    def on_train_begin(self, **kw): self._rec('train_begin', kw)
    def on_epoch_begin(self, **kw): self._rec('epoch_begin', kw)
    def on_batch_end(self, **kw):
        self._rec('batch_end', kw)
        if 'last_metrics' in kw: self.read.append(kw['last_metrics'][0])  # v1 idiom: only once it exists
    def on_epoch_end(self, **kw): self._rec('epoch_end', kw)


def test_state_starts_as_v1s_and_grows():
    cb = KeysSeen()
    learn = synth_learner()
    learn.fit(2, 1e-2, callbacks=[cb])
    assert cb.seen['train_begin'] >= {'epoch', 'iteration', 'num_batch', 'skip_validate', 'n_epochs', 'pbar', 'metrics'}
    for k in ('last_metrics', 'last_input', 'last_output', 'last_loss', 'smooth_loss', 'stop_epoch', 'skip_step'):
        assert k not in cb.seen['train_begin'], k
    assert 'last_metrics' not in cb.seen['epoch_begin'] and 'last_input' in cb.seen['batch_end']
    assert 'last_metrics' in cb.seen['epoch_end']
    assert cb.read, 'the second epoch reads the first epoch\'s last_metrics'


def test_a_returned_key_must_exist_when_returned():
    class EarlyKey(Callback):
        def on_train_begin(self, **kw): return {'last_metrics': [0.]}
    cbh = CallbackHandler([EarlyKey()])
    with pytest.raises(Exception, match="last_metrics isn't a valid key"): cbh.on_train_begin(1, None, [])
    class Stop(Callback):
        def on_train_begin(self, **kw): return {'stop_training': True}
    cbh = CallbackHandler([Stop()])
    cbh.on_train_begin(1, None, [])  # stop_training exists from the start, so on_train_begin can ask for it
    assert cbh.state_dict['stop_training'] is True


def test_library_callbacks_run_with_the_v1_state():
    from fastbook_core.callbacks import (CSVLogger, EarlyStoppingCallback, ReduceLROnPlateauCallback,
                                         SaveModelCallback, TerminateOnNaNCallback)
    from functools import partial
    learn = synth_learner(callback_fns=[CSVLogger, partial(EarlyStoppingCallback, patience=3), SaveModelCallback,
                                        ReduceLROnPlateauCallback])
    learn.fit_one_cycle(2, 1e-2, callbacks=[TerminateOnNaNCallback()])
    assert len(learn.recorder.val_losses) == 2 and learn.validate()


def data(n=512, bs=64):
    x = torch.randn(n, 2)
    return DataBunch.create(TensorDataset(x[:n // 2 * 2], x[:, :1]), TensorDataset(x[:64], x[:64, :1]), bs=bs, device='cpu')


@pytest.mark.parametrize('how', ['data', 'train_dl', 'new', 'create'])
def test_a_batch_size_larger_than_the_training_set_is_refused_wherever_it_changes(how):
    d = data()
    with pytest.raises(ValueError, match='fewer than one batch') as e:
        if how == 'data': d.batch_size = 1000
        elif how == 'train_dl': d.train_dl.batch_size = 1000
        elif how == 'new': d.train_dl.new(batch_size=1000)
        else: DataBunch.create(d.train_ds, bs=1000, device='cpu')
    assert '512 items' in str(e.value)
    assert d.batch_size == 64 and len(d.train_dl) == 8 and d.valid_dl.batch_size == 64  # nothing changed


def test_a_valid_batch_size_change_still_works():
    d = data()
    d.batch_size = 512
    assert (len(d.train_dl), d.valid_dl.batch_size) == (1, 512)
    with pytest.raises(ValueError, match='positive integer'): d.batch_size = 0
    d.valid_dl.batch_size = 1000  # an in-order loader keeps every item: no batch is lost
    assert len(d.valid_dl) == 1


@pytest.mark.parametrize('n_batches', [1, 2, 3])
def test_one_cycle_on_few_batches_starts_with_its_warm_up(n_batches):
    learn = synth_learner(n_train=16 * n_batches, bs=16)
    learn.fit_one_cycle(1, 0.1)
    lrs = learn.recorder.lrs
    assert len(lrs) == n_batches
    assert lrs[0] == pytest.approx(0.1 / 25)
    if n_batches > 1: assert lrs[1] == pytest.approx(0.1)


def test_scheduler_gives_every_phase_one_iteration():
    from fastbook_core.callback import Scheduler
    assert Scheduler((1., 0.), 0).n_iter == 1 and Scheduler(1., -3).n_iter == 1


def v1_checkpoint(learn, path):
    "A file laid out as fastai v1 saved after fit_one_cycle: model weights, and an optimizer state whose hyper-parameters are numpy numbers."
    opt = learn.opt.state_dict() if learn.opt is not None else None
    for pg in opt['param_groups']:
        pg['lr'] = np.float64(pg['lr'])
        pg['betas'] = (np.float64(pg['betas'][0]), pg['betas'][1])
        pg['initial_lr'] = np.float64(0.004)
    torch.save({'model': learn.model.state_dict(), 'opt': opt}, path)


def test_a_v1_checkpoint_with_numpy_numbers_loads(tmp_path):
    learn = synth_learner()
    learn.fit_one_cycle(1, 1e-2)
    (learn.path / learn.model_dir).mkdir(parents=True, exist_ok=True)
    v1_checkpoint(learn, learn.path / learn.model_dir / 'v1.pth')
    state = load_checkpoint(learn.path / learn.model_dir / 'v1.pth')
    assert isinstance(state['opt']['param_groups'][0]['lr'], np.float64)
    learn.load('v1', with_opt=False)  # v1's own file, read safely
    learn.load('v1', with_opt=True)
    assert isinstance(learn.opt.lr, float)


def test_numpy_data_types_only(tmp_path):
    torch.save({'a': np.float32(1.), 'b': np.int64(2), 'c': np.bool_(True), 'd': np.dtype('int8')}, tmp_path / 'np.pth')
    got = load_checkpoint(tmp_path / 'np.pth')
    assert got['a'] == np.float32(1.) and got['d'] == np.dtype('int8')
    torch.save({'arr': np.ones(3)}, tmp_path / 'arr.pth')  # an ndarray is rebuilt by a function: refused, named
    with pytest.raises(CheckpointError, match='Refusing to load'): load_checkpoint(tmp_path / 'arr.pth')
    class Evil:
        def __reduce__(self): return (print, ('ran',))
    torch.save({'x': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match='builtins.print'): load_checkpoint(tmp_path / 'evil.pth')
    import io
    buf = io.BytesIO(); torch.save({'lr': np.float64(0.1)}, buf)
    assert unpickle_blob(buf.getvalue(), 'blob', 'a state')['lr'] == 0.1  # pickled blobs inside files too


def test_add_metrics_import_paths():
    from fastbook_core.torch_core import add_metrics
    from fastbook_core.callback import add_metrics as from_callback
    assert add_metrics is from_callback  # basic_train's path: requested of its owner (io_requests.md)
    import fastbook_core.callback as cb_mod
    assert 'add_metrics' in cb_mod.__all__
