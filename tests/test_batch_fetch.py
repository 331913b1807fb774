"""The CPU fast path of `DeviceDataLoader` (issue 29, F1/F2): whole-batch loaders of CPU tensors are indexed with one
index tensor per epoch, and must give exactly the batches, the random draws and the fits of torch's DataLoader."""
import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset
import fastbook_core.basic_data as bd
from fastbook_core.basics import *
from fastbook_core import batch_path

X = torch.randn(203, 5)
Y = (X[:, 0] > 0).long()


def batches_and_state(dl, seed, stop=None, gen=None):
    "The batches of one epoch of `dl` and the random states afterwards (global and loader generator)."
    torch.manual_seed(seed)
    if gen is not None: gen.manual_seed(seed + 1)
    out = []
    for i, b in enumerate(dl):
        out.append(b)
        if stop is not None and i + 1 == stop: break
    return out, torch.get_rng_state(), None if gen is None else gen.get_state()


def assert_same(a, b):
    (ba, sa, ga), (bb, sb, gb) = a, b
    assert len(ba) == len(bb)
    for u, v in zip(ba, bb):
        assert type(u) is type(v) and len(u) == len(v)
        for s, t in zip(u, v): assert s.dtype == t.dtype and torch.equal(s, t)
    assert torch.equal(sa, sb)
    assert (ga is None) == (gb is None) and (ga is None or torch.equal(ga, gb))


@pytest.mark.parametrize('shuffle', [False, True])
@pytest.mark.parametrize('drop_last', [False, True])
@pytest.mark.parametrize('bs', [1, 16, 29, 203])
@pytest.mark.parametrize('stop', [None, 1, 3])
def test_batches_and_draws_are_the_dataloaders(shuffle, drop_last, bs, stop):
    ddl = DeviceDataLoader.create(TensorDataset(X, Y), bs=bs, shuffle=shuffle, drop_last=drop_last, device='cpu')
    assert batch_path.cpu_indexable(ddl.dl)
    for seed in (0, 7):
        assert_same(batches_and_state(ddl, seed, stop), batches_and_state(ddl.dl, seed, stop))


@pytest.mark.parametrize('stop', [None, 2])
def test_a_loader_with_its_own_generator_keeps_torchs_path_and_its_draws(stop):
    g = torch.Generator()
    ddl = DeviceDataLoader.create(TensorDataset(X, Y), bs=16, shuffle=True, device='cpu', generator=g)
    assert not batch_path.cpu_indexable(ddl.dl)
    assert_same(batches_and_state(ddl, 0, stop, g), batches_and_state(ddl.dl, 0, stop, g))


def test_other_samplers_and_dtypes():
    ds = TensorDataset(X.double(), Y.bool(), torch.arange(203, dtype=torch.int16))
    for samp in (RandomSampler(ds, replacement=True, num_samples=50), RandomSampler(ds, num_samples=300),
                 SequentialSampler(ds)):
        dl = DataLoader(ds, batch_size=None, sampler=BatchSampler(samp, 16, False))
        ddl = DeviceDataLoader(dl, 'cpu')
        assert_same(batches_and_state(ddl, 3), batches_and_state(dl, 3))


def test_the_fast_path_is_taken_where_it_is_exact(monkeypatch):
    calls = []
    real = bd.DeviceDataLoader._indexed
    monkeypatch.setattr(bd.DeviceDataLoader, '_indexed', lambda self, where: calls.append(where) or real(self, where))
    data = DataBunch.create(TensorDataset(X, Y), TensorDataset(X, Y), bs=16, device='cpu')
    for dl in data.dls: list(dl)
    assert len(calls) == len(data.dls) == 4  # train, valid, fix, single
    calls.clear()
    list(DeviceDataLoader.create(TensorDataset(X, Y), bs=16, shuffle=True, device='cpu', num_workers=1))
    list(DeviceDataLoader.create(TensorDataset(X, Y), bs=16, device='cpu', collate_fn=torch.utils.data.default_collate))
    assert calls == []


@pytest.mark.parametrize('gen', [False, True])
@pytest.mark.parametrize('n', [1, 10, 203])
def test_random_order_is_torchs_sampler(gen, n):
    "`_random_order` copies torch's RandomSampler: this fails if a torch release changes how the sampler draws."
    g = torch.Generator() if gen else None
    s = RandomSampler(range(n), generator=g)
    torch.manual_seed(5)
    if g is not None: g.manual_seed(6)
    want = list(s); after = torch.get_rng_state(), None if g is None else g.get_state()
    torch.manual_seed(5)
    if g is not None: g.manual_seed(6)
    got = batch_path.random_order(s)
    assert got.tolist() == want and got.dtype == torch.long
    assert torch.equal(torch.get_rng_state(), after[0])
    if g is not None: assert torch.equal(g.get_state(), after[1])


class StopAfter(Callback):
    "Stops every training epoch after `n` batches (the epoch's order has been drawn in full by then)."
    def __init__(self, n): self.n, self.i = n, 0
    def on_epoch_begin(self, **kwargs): self.i = 0
    def on_batch_end(self, train, **kwargs):
        if not train: return
        self.i += 1
        if self.i >= self.n: return {'stop_epoch': True}


def seeded_fit(stop=None):
    torch.manual_seed(0)
    data = DataBunch.create(TensorDataset(X[:160], Y[:160]), TensorDataset(X[160:], Y[160:]), bs=16, device='cpu')
    learn = Learner(data, nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)), metrics=[accuracy], silent=True)
    learn.fit(3, 1e-2, callbacks=[] if stop is None else [StopAfter(stop)])
    r = learn.recorder
    preds = learn.get_preds()
    return ([float(l) for l in r.losses], [float(l) for l in r.val_losses], [[float(m) for m in ms] for ms in r.metrics],
            r.lrs, [p.clone() for p in learn.model.parameters()], preds, torch.get_rng_state())


@pytest.mark.parametrize('stop', [None, 4])
def test_a_seeded_fit_is_bitwise_that_of_torchs_dataloader(monkeypatch, stop):
    fast = seeded_fit(stop)
    monkeypatch.setattr(bd, 'cpu_indexable', lambda dl: False)  # every batch from torch's DataLoader iterator
    plain = seeded_fit(stop)
    for a, b in zip(fast[:4], plain[:4]): assert a == b
    assert len(fast[0]) == (30 if stop is None else 3 * stop)
    for p, q in zip(fast[4], plain[4]): assert torch.equal(p, q)
    for p, q in zip(fast[5], plain[5]): assert torch.equal(p, q)
    assert torch.equal(fast[6], plain[6])


def test_prefetch_issues_the_next_batch_before_handing_one_over():
    "The copy-ahead path's order of work: batch k+1 issued before batch k is used, each made ready just before use."
    log = []
    def issue(b): log.append(f'issue {b}'); return b
    def ready(b): log.append(f'ready {b}'); return b
    for b in batch_path.prefetch(range(3), issue, ready): log.append(f'use {b}')
    assert log == ['issue 0', 'ready 0', 'issue 1', 'use 0', 'ready 1', 'issue 2', 'use 1', 'ready 2', 'use 2']
    assert list(batch_path.prefetch([], issue, ready)) == []
