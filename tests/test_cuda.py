"""On a CUDA device: fit makes the host wait for the GPU at no training or validation batch, and the data path
(pinned memory, copies one batch ahead on a side stream, data kept on the device) gives the CPU's batches (issue 19).

Every test here skips on a machine without a GPU; `tools/gpu_check.sh` runs them where one is lent.

Two ways of catching a host sync:
- `torch.cuda.set_sync_debug_mode('error')` from the start of each batch to the end of the last batch of its loader
  (the first batch of each loader in the first epoch excepted: one-off set-up), so that the loader's work between
  batches, the progress display and every callback are checked; a sync raises where it happens.
- `'warn'` over whole fits, counting each sync by the line that made it: a fit with three times the batches must
  make no more syncs (those of each epoch's end are allowed, those of each batch are not).
The documented exceptions: `GradScaler.step` syncs once per step (it decides on the host whether to step), and so
do `LRFinder` and `TerminateOnNaNCallback` (not fitted here).
"""
import collections, io, sys, warnings
from functools import partial
from pathlib import Path
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastbook_core.basics import *
import fastbook_core.basic_data as basic_data
import fastbook_core.progress as progress
from fastbook_core.callback import Callback
from fastbook_core import batch_path

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='no CUDA device on this machine: these tests check what fit does on a GPU (host syncs per batch, pinned '
           'copies one batch ahead, data kept on the device); tools/gpu_check.sh runs them where a GPU is lent')

SYNC = 'synchronizing CUDA operation'


@pytest.fixture(autouse=True)
def _sync_mode_off():
    yield
    torch.cuda.set_sync_debug_mode(0)


def make_data(n_train=256, n_valid=96, bs=32, n_in=8, n_classes=3, device='cuda', seed=0, **kwargs):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, n_in, generator=g)
    y = torch.randint(0, n_classes, (n_train + n_valid,), generator=g)
    return DataBunch.create(TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:]), bs=bs,
                            device=device, **kwargs)


def make_learner(data, metrics=None, silent=True, fp16=False, n_in=8, n_classes=3):
    set_seed(0)
    model = nn.Sequential(nn.Linear(n_in, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, n_classes))
    learn = Learner(data, model, metrics=metrics, silent=silent)
    if fp16: learn.to_fp16()
    return learn


class _GuardOn(Callback):
    "Sync debug mode 'error' from the start of each batch (but the first of each loader in the first epoch)."
    _order = -10**9
    def __init__(self): self.seen, self.checked = collections.Counter(), 0
    def on_batch_begin(self, train, epoch, **kwargs):
        if epoch > 0 or self.seen[train]:
            torch.cuda.set_sync_debug_mode('error')
            self.checked += 1
        self.seen[train] += 1
    def on_train_end(self, **kwargs): torch.cuda.set_sync_debug_mode(0)


class _GuardOff(Callback):
    "Back to the default mode at the end of the last batch of each loader: the epoch's end may read values."
    _order = 10**9
    def __init__(self, learn): self.learn = learn
    def on_epoch_begin(self, **kwargs): self.n_valid = 0
    def on_batch_end(self, train, num_batch, **kwargs):
        if train: last = num_batch == len(self.learn.data.train_dl) - 1
        else:
            self.n_valid += 1
            last = self.n_valid == len(self.learn.data.valid_dl)
        if last: torch.cuda.set_sync_debug_mode(0)


def guards(learn):
    on = _GuardOn()
    return on, [on, _GuardOff(learn)]


def allow_scaler_sync(monkeypatch):
    "Let `GradScaler.step` make its one sync per step (it decides on the host whether the optimizer steps)."
    real, calls = torch.amp.GradScaler.step, []
    def step(self, *args, **kwargs):
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try: return real(self, *args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(mode)
            calls.append(1)
    monkeypatch.setattr(torch.amp.GradScaler, 'step', step)
    return calls


def _fit(learn, how):
    def run(callbacks=None):
        if how == 'one_cycle': learn.fit_one_cycle(2, 1e-2, callbacks=callbacks)
        else: learn.fit(2, 1e-2, callbacks=callbacks)
    return run


CONFIGS = {  # name: (learner arguments, how to fit)
    'plain': (dict(), 'fit'),
    'one_cycle': (dict(), 'one_cycle'),
    'metrics': (dict(metrics=[accuracy, error_rate]), 'fit'),
    'text_display': (dict(silent=False, metrics=[accuracy]), 'fit'),
    'fp16': (dict(fp16=True, metrics=[accuracy]), 'fit'),
}
DATA = {'default': dict(), 'on_device': dict(on_device=True), 'per_sample': dict(batched_fetch=False)}


@pytest.mark.parametrize('data_kind', list(DATA))
@pytest.mark.parametrize('config', list(CONFIGS))
def test_no_host_sync_in_any_batch(config, data_kind, monkeypatch, capsys):
    kw, how = CONFIGS[config]
    learn = make_learner(make_data(**DATA[data_kind]), **kw)
    scaler_calls = allow_scaler_sync(monkeypatch)
    on, cbs = guards(learn)
    _fit(learn, how)(cbs)
    torch.cuda.synchronize()
    n_train, n_valid = len(learn.data.train_dl), len(learn.data.valid_dl)
    assert on.checked == 2 * (n_train + n_valid) - 2  # every batch but the first of each loader was checked
    assert len(learn.recorder.losses) == 2 * n_train and len(learn.recorder.val_losses) == 2
    assert all(torch.isfinite(torch.as_tensor(v)) for v in learn.recorder.val_losses)
    if kw.get('fp16'): assert len(scaler_calls) == 2 * n_train
    if not kw.get('silent', True): assert 'train_loss' in capsys.readouterr().out


def test_terminal_bars_redraw_without_sync(monkeypatch):
    class TTY(io.StringIO):
        def isatty(self): return True
    monkeypatch.setattr(sys, 'stderr', TTY())
    monkeypatch.setenv(progress.PROGRESS_ENV, 'text')
    real_init = progress.TextView.__init__
    def init(self, master):
        real_init(self, master)
        self.interval = 0.  # redraw after every batch: what a slow loop does every 0.2 s
    monkeypatch.setattr(progress.TextView, '__init__', init)
    learn = make_learner(make_data(), silent=False)
    _, cbs = guards(learn)
    learn.fit(2, 1e-2, callbacks=cbs)


def test_mixup_has_no_sync_per_batch():
    learn = make_learner(make_data()).mixup()
    _, cbs = guards(learn)
    learn.fit(2, 1e-2, callbacks=cbs)


def test_confusion_matrix_metrics_have_no_sync_per_batch():
    from fastbook_core.metrics import Precision
    learn = make_learner(make_data(), metrics=[Precision(average='macro')])
    _, cbs = guards(learn)
    learn.fit(2, 1e-2, callbacks=cbs)


def count_syncs(run) -> collections.Counter:
    "The host syncs `run()` makes, counted by the file and line that made them."
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try: run()
        finally: torch.cuda.set_sync_debug_mode(0)
    return collections.Counter(f'{Path(w.filename).name}:{w.lineno}' for w in ws if SYNC in str(w.message))


@pytest.mark.parametrize('data_kind', list(DATA))
@pytest.mark.parametrize('config', list(CONFIGS))
def test_syncs_do_not_grow_with_the_batches(config, data_kind):
    kw, how = CONFIGS[config]
    _fit(make_learner(make_data(**DATA[data_kind]), **kw), how)()  # warm-up: one-off set-up is not counted
    counts = {n: count_syncs(_fit(make_learner(make_data(n_train=n, n_valid=n // 2, **DATA[data_kind]), **kw), how))
              for n in (128, 384)}
    for c in counts.values():
        for k in [k for k in c if k.startswith('grad_scaler.py')]: del c[k]  # GradScaler.step: once a step, allowed
    assert counts[128] == counts[384], f'syncs that grow with the number of batches: {counts}'


# ------------------------------------------------------------------------------------------------ the data path
def batches(dl, seed=0, device='cuda'):
    "The batches of an epoch of `dl`, on the CPU, after checking that they came on `device`."
    torch.manual_seed(seed)
    res = []
    for b in dl:
        assert all(t.device.type == device for t in b), [t.device for t in b]
        res.append([t.cpu() for t in b])
    return res


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert len(u) == len(v)
        for s, t in zip(u, v): assert s.dtype == t.dtype and torch.equal(s, t)


@pytest.mark.parametrize('kw', [dict(), dict(batched_fetch=False), dict(on_device=True),
                                dict(generator='g'), dict(on_device=True, generator='g')])
def test_cuda_batches_are_the_cpu_batches(kw):
    "Same order (the same draws from the random generators), same content, every loader, several epochs."
    def data(device):
        extra = {**kw, 'generator': torch.Generator().manual_seed(7)} if kw.get('generator') else kw
        return make_data(n_train=300, n_valid=70, bs=32, device=device, **extra)
    gpu, cpu = data('cuda'), data('cpu')
    for _ in range(3):
        for dg, dc in zip(gpu.dls, cpu.dls): assert_same_batches(batches(dg), batches(dc, device='cpu'))


def test_whole_batches_are_gathered_into_pinned_memory_and_copied_without_a_sync(monkeypatch):
    data = make_data(n_train=512, bs=64)
    ts = data.train_ds.tensors
    assert batch_path.gather_rows(ts[0], torch.arange(8), pin=True).is_pinned()
    pinned_copies = []
    real = batch_path.CudaCopier._copy
    def spy(self, t):
        pinned_copies.append(t.is_pinned())
        return real(self, t)
    monkeypatch.setattr(batch_path.CudaCopier, '_copy', spy)
    torch.cuda.set_sync_debug_mode('error')  # a blocking copy would raise here
    try: got = list(data.train_dl)
    finally: torch.cuda.set_sync_debug_mode(0)
    assert len(got) == len(data.train_dl) and got[0][0].device.type == 'cuda'
    assert pinned_copies == [True] * 2 * len(data.train_dl)  # gathered straight into pinned memory


def test_per_sample_batches_are_pinned_before_the_copy(monkeypatch):
    data = make_data(n_train=128, bs=32, batched_fetch=False)
    real, pinned = torch.Tensor.pin_memory, []
    def pin_memory(self, *args, **kwargs):
        pinned.append(self.shape)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(torch.Tensor, 'pin_memory', pin_memory)
    torch.cuda.set_sync_debug_mode('error')  # a blocking copy would raise
    try: got = list(data.train_dl)
    finally: torch.cuda.set_sync_debug_mode(0)
    assert len(got) == 4 and all(t.device.type == 'cuda' for b in got for t in b)
    assert pinned == [torch.Size([32, 8]), torch.Size([32])] * 4  # each collated tensor, once


def test_workers_pin_in_the_loader():
    data = make_data(num_workers=2)
    assert data.train_dl.dl.pin_memory and data.train_dl.dl.init_kwargs['pin_memory']
    assert_same_batches(batches(data.valid_dl), batches(make_data(device='cpu').valid_dl))


def test_the_copy_is_ordered_before_use():
    "The training stream reads a batch only once its copy on the side stream is done (large copies, read at once)."
    x, y = torch.randn(16 * 2048, 1024), torch.arange(16 * 2048)
    sums = [xb.sum(1) for xb, yb in DeviceDataLoader.create(TensorDataset(x, y), bs=2048, device='cuda')]
    torch.cuda.synchronize()
    assert torch.allclose(torch.cat(sums).cpu(), x.sum(1), atol=1e-3)


def test_a_batch_memory_is_kept_until_the_training_stream_used_it():
    "Later copies do not reuse a batch's memory while the training stream still has work queued on it."
    x, y = torch.randn(64 * 1024, 256), torch.arange(64 * 1024)
    sums = []
    for xb, yb in DeviceDataLoader.create(TensorDataset(x, y), bs=1024, device='cuda'):
        torch.cuda._sleep(2_000_000)  # the training stream falls behind; the copies go on meanwhile on the side stream
        sums.append(xb.sum(1))
    torch.cuda.synchronize()
    assert torch.allclose(torch.cat(sums).cpu(), x.sum(1), atol=1e-3)


def test_stopping_early_and_errors_on_cuda():
    data = make_data(n_train=256, bs=32)
    it = iter(data.train_dl)
    next(it); it.close()  # an epoch stopped early: nothing left in flight that matters
    assert len(list(data.train_dl)) == 8

    class Fails(torch.utils.data.Dataset):
        def __len__(self): return 12
        def __getitem__(self, i):
            if i == 8: raise KeyError(i)
            return torch.tensor([float(i)]), 0
    seen = []
    with pytest.raises(KeyError):
        for b in DeviceDataLoader.create(Fails(), bs=4, device='cuda'): seen.append(b)
    assert len(seen) == 2  # the error comes after the batch before it was used


def test_on_device_moves_the_data_once_and_indexes_it_there():
    data = make_data(on_device=True)
    assert all(t.device.type == 'cuda' for ds in (data.train_ds, data.valid_ds) for t in ds.tensors)
    assert data.train_ds is data.fix_ds and data.single_ds is data.valid_ds
    ds = TensorDataset(torch.randn(64, 8), torch.zeros(64, dtype=torch.long))
    same = DataBunch.create(ds, ds, bs=16, device='cuda', on_device=True)  # one dataset for two sets: moved once
    assert same.train_ds is same.valid_ds and same.train_ds is not ds and ds.tensors[0].device.type == 'cpu'
    before = torch.cuda.memory_allocated()
    torch.cuda.set_sync_debug_mode('error')
    try: got = [b for dl in data.dls for b in dl]
    finally: torch.cuda.set_sync_debug_mode(0)
    assert len(got) == sum(len(dl) for dl in data.dls)
    del got
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before + 2**20  # batches come and go; the data was not copied again


def test_a_tensor_dataset_already_on_the_gpu_is_indexed_there():
    x, y = torch.randn(256, 8, device='cuda'), torch.randint(0, 3, (256,), device='cuda')
    data = DataBunch.create(TensorDataset(x, y), bs=32, device='cuda')
    torch.cuda.set_sync_debug_mode('error')  # the DataLoader's own path indexes with a list: a sync per batch
    try: got = list(data.train_dl)
    finally: torch.cuda.set_sync_debug_mode(0)
    assert len(got) == 8
    on_cpu = DataBunch.create(TensorDataset(x.cpu(), y.cpu()), bs=32, device='cpu')
    for dg, dc in zip(data.dls, on_cpu.dls): assert_same_batches(batches(dg), batches(dc, device='cpu'))


def test_on_device_refuses_data_that_does_not_fit():
    free, total = torch.cuda.mem_get_info()
    rows = int(total // (3 * 32 * 32 * 4)) + 1  # more than the whole card, as a view of one item (no host memory)
    big = TensorDataset(torch.zeros(1, 3, 32, 32).expand(rows, 3, 32, 32), torch.zeros(1, dtype=torch.long).expand(rows))
    before = torch.cuda.memory_allocated()
    with pytest.raises(ValueError, match=r'on_device=True: the data takes .* GiB \(train .*\) and cuda has .* free of '
                                         r'.*Leave on_device=False'):
        DataBunch.create(big, bs=256, device='cuda', on_device=True)
    assert torch.cuda.memory_allocated() == before  # refused before anything moved
    small = TensorDataset(torch.randn(1000, 4), torch.zeros(1000, dtype=torch.long))
    with pytest.raises(TypeError, match='not a TensorDataset'):
        DataBunch.create(small, [(torch.zeros(4), 0)] * 10, bs=8, device='cuda', on_device=True)
    assert torch.cuda.memory_allocated() == before


def test_on_device_fit_matches_the_default_fit():
    "The same seed gives the same losses with the data kept on the device as with batches copied one by one."
    losses = {}
    for kind in ('default', 'on_device'):
        learn = make_learner(make_data(**DATA[kind]), metrics=[accuracy])
        torch.manual_seed(0)
        learn.fit(2, 1e-2)
        losses[kind] = torch.stack([torch.as_tensor(v) for v in learn.recorder.losses]).cpu()
    assert torch.allclose(losses['default'], losses['on_device'], atol=1e-5)


def test_changing_the_device_of_a_databunch_moves_its_batches():
    data = make_data(device='cpu')
    data.device = 'cuda'
    assert {d.device.type for d in data.dls} == {'cuda'}
    assert next(iter(data.train_dl))[0].device.type == 'cuda'
    assert data.one_batch(cpu=False)[0].device.type == 'cuda'
