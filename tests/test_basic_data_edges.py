"""The edge cases of `basic_data` that a reader of its chapter does not need (issue 25): they were hidden test cells
of nbs/02_basic_data.ipynb, and are the same assertions here, one topic per test.

- The CUDA path of `DeviceDataLoader` (whole batches copied one batch ahead of their use), run on the CPU with a
  copier that copies nothing: it must give exactly the `DataLoader`'s batches, from the same random draws.
- Data kept on the device (`on_device=True`): the same batches as the ordinary loaders, what it refuses and how it
  says so, an epoch's indices drawn as torch's batch sampler draws them, and the message for data too big.
"""
import pickle
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler, TensorDataset
from torch.utils.data.dataloader import default_collate
import fastbook_core.basic_data as bd
from fastbook_core.basic_data import DataBunch, DatasetType, DeviceDataLoader
from fastbook_core import batch_path


def data():
    "The chapter's synthetic data: 100 items of 3 features, the target whether their sum is positive."
    torch.manual_seed(0)
    x = torch.randn(100, 3)
    return x, (x.sum(1) > 0).long()


x, y = data()


def raises(f, contains: str, exc=Exception):
    "`f()` raises `exc` with `contains` in its message."
    with pytest.raises(exc) as e: f()
    assert contains in str(e.value), f'{contains!r} not in {str(e.value)!r}'


def same_items(a: list, b: list):
    "Two lists of batches hold the same batches: same count, same types, equal tensors of the same dtype."
    assert len(a) == len(b)
    assert [type(o) for o in a] == [type(o) for o in b]
    for u, v in zip(a, b):
        for s, t in zip(u, v):
            assert torch.equal(s, t) and s.dtype == t.dtype


class Ragged(Dataset):
    "Items of different shapes: no batch can be made of them."
    def __len__(self): return 8
    def __getitem__(self, i): return torch.zeros(i + 1), 0


# ---- the CUDA path (copies one batch ahead), on the CPU ----

class NoCopy:
    "A copier for the CPU: the path of a CUDA device, without the copies."
    pin = False
    def issue(self, b): return b
    def ready(self, b): return b


def two_loaders(**kw):
    "Two loaders of one dataset of 50 items, each with its own generator seeded alike."
    xs, ys = torch.randn(50, 3), torch.arange(50)
    return [DeviceDataLoader.create(TensorDataset(xs, ys), bs=8, shuffle=True, drop_last=True, device='cpu',
                                    generator=torch.Generator().manual_seed(5), **kw) for _ in range(2)]


def test_ahead_gives_the_loaders_batches():
    sdl = DeviceDataLoader.create(TensorDataset(torch.arange(10.)[:, None], torch.arange(10)), bs=4, shuffle=True,
                                  device='cpu')
    torch.manual_seed(0); ahead = [y for _, y in sdl._ahead(NoCopy())]
    torch.manual_seed(0); plain = [y for _, y in sdl]
    assert len(ahead) == 3
    assert all(torch.equal(a, p) for a, p in zip(ahead, plain)) and len(ahead) == len(plain)


def test_ahead_with_its_own_generator_stays_in_step_over_epochs():
    d1, d2 = two_loaders()
    for _ in range(3):
        a, b = list(d1._ahead(NoCopy())), list(d2)
        assert len(a) == 6
        same_items(a, b)


def test_ahead_takes_the_path_of_loaders_that_collate_sample_by_sample():
    xs, ys = torch.randn(50, 3), torch.arange(50)
    d4 = DeviceDataLoader.create(TensorDataset(xs, ys), bs=8, shuffle=True, device='cpu', collate_fn=default_collate)
    torch.manual_seed(1); a = [y for _, y in d4._ahead(NoCopy())]
    torch.manual_seed(1); b = [y for _, y in d4]
    assert torch.equal(torch.cat(a), torch.cat(b))


def test_ahead_runs_the_transforms_on_each_ready_batch():
    ys = torch.arange(50)
    d3 = DeviceDataLoader.create(TensorDataset(torch.randn(50, 3), ys), bs=8, device='cpu',
                                 tfms=[lambda b: (b[0], b[1] * 10)])
    assert torch.equal(torch.cat([y for _, y in d3._ahead(NoCopy())]), ys * 10)


def test_ahead_raises_a_fetch_error_after_the_batch_before_is_used():
    class Fails(Dataset):
        def __len__(self): return 12
        def __getitem__(self, i):
            if i == 8: raise KeyError(i)
            return torch.tensor([float(i)])
    seen = []
    with pytest.raises(KeyError):
        for b in DeviceDataLoader.create(Fails(), bs=4, device='cpu')._ahead(NoCopy()): seen.append(b)
    assert len(seen) == 2


def test_ahead_fetches_one_batch_ahead_when_an_epoch_stops_early():
    fetched = []
    class Counting(NoCopy):
        def issue(self, b): fetched.append(b); return b
    _, d2 = two_loaders()
    for i, b in enumerate(d2._ahead(Counting())):
        if i == 1: break
    assert len(fetched) == 3


def test_prefetch_of_nothing_and_same_device():
    assert list(batch_path.prefetch([], lambda b: b, lambda b: b)) == []
    assert batch_path.same_device(torch.device('cpu'), torch.device('cpu')) is True
    assert batch_path.same_device(torch.device('cpu'), torch.device('cuda')) is False


# ---- data kept on the device ----

def loaders(**kw) -> DataBunch:
    "A DataBunch of train, valid and test sets with a validation batch size of its own."
    return DataBunch.create(TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:]), TensorDataset(x[:20]), bs=16,
                            val_bs=12, device='cpu', **kw)


def same_batches(d1: DataBunch, d2: DataBunch, seed: int = 0):
    "Every loader of `d1` gives the batches of `d2`'s, from the same seed."
    for l1, l2 in zip(d1.dls, d2.dls, strict=True):
        torch.manual_seed(seed); b1 = list(l1)
        torch.manual_seed(seed); b2 = list(l2)
        same_items(b1, b2)


def test_kept_on_device_gives_the_ordinary_batches():
    kept, plain = loaders(on_device=True), loaders()
    assert [d.on_device for d in kept.dls] == [True] * 5
    assert [d.on_device for d in plain.dls] == [False] * 5
    for seed in (0, 1): same_batches(kept, plain, seed)


def test_kept_on_device_with_a_generator_stays_in_step_over_epochs():
    ka = loaders(on_device=True, generator=torch.Generator().manual_seed(3))
    pa = loaders(generator=torch.Generator().manual_seed(3))
    for _ in range(3): same_batches(ka, pa)


def test_kept_on_the_cpu_copies_nothing():
    kept = loaders(on_device=True)
    assert kept.train_ds is kept.fix_ds
    k2 = DataBunch.create(TensorDataset(x, y), bs=16, device='cpu', on_device=True)
    assert k2.train_ds.tensors[0].data_ptr() == x.data_ptr()


def test_kept_on_device_after_a_new_batch_size():
    kept, plain = loaders(on_device=True), loaders()
    kept.batch_size = 8; plain.batch_size = 8
    same_batches(kept, plain)


def test_kept_on_device_transforms_leave_the_dataset_alone():
    def zero_(b): b[0].zero_(); return b
    kt = DataBunch.create(TensorDataset(x[:80].clone(), y[:80]), bs=16, device='cpu', on_device=True, dl_tfms=[zero_])
    assert next(iter(kt.train_dl))[0].abs().sum() == 0
    assert torch.equal(kt.train_ds.tensors[0], x[:80])
    assert kt.one_batch(DatasetType.Fix)[0].abs().sum() == 0
    assert torch.equal(kt.one_batch(DatasetType.Fix, denorm=False)[1], y[:16])
    kt.add_test(TensorDataset(x[:10]))  # a test set added later is kept on the device as well
    assert kt.test_dl.on_device is True and len(list(kt.test_dl)) == 1


def test_device_loader_create_and_new_keep_on_device():
    kd = DeviceDataLoader.create(TensorDataset(x, y), bs=16, device='cpu', on_device=True)
    assert kd.on_device is True and kd.new(shuffle=True).on_device is True
    assert torch.equal(torch.cat([b for _, b in kd]), y)


def test_kept_subclass_keeps_its_attributes():
    class WithC2(TensorDataset): c = 2
    assert DataBunch.create(WithC2(x, y), bs=16, device='cpu', on_device=True).c == 2


class Doubled(TensorDataset):
    "A TensorDataset whose `__getitem__` computes its items: indexing its tensors would not give them."
    def __getitem__(self, i): return self.tensors[0][i] * 2, self.tensors[1][i]


@pytest.mark.parametrize('make, contains', [
    (lambda: DataBunch.create(Ragged(), bs=4, device='cpu', on_device=True), 'not a TensorDataset'),
    (lambda: DataBunch.create(TensorDataset(x, y), Doubled(x, y), bs=16, device='cpu', on_device=True),
     'the valid set is a TensorDataset whose __getitem__ computes its items'),
    (lambda: DataBunch.create(TensorDataset(x, y), bs=16, device='cpu', on_device=True, num_workers=2), 'leave num_workers=0'),
    (lambda: DataBunch.create(TensorDataset(x, y), bs=16, device='cpu', on_device=True, collate_fn=default_collate),
     'drop a collate_fn'),
    (lambda: DataBunch.create(TensorDataset(x, y), bs=16, device='cpu', on_device=True, batched_fetch=False),
     'drop batched_fetch=False'),
    (lambda: DeviceDataLoader.create(Ragged(), bs=4, device='cpu', on_device=True), 'the dataset is a Ragged'),
    (lambda: DataBunch.create(TensorDataset(x, y), bs=16, on_device='cuda'), "on_device='cuda': pass True or False"),
    (lambda: DeviceDataLoader.create(TensorDataset(x, y), bs=16, on_device=1), 'on_device=1'),
], ids=['not-tensors', 'computed-items', 'workers', 'collate_fn', 'per-sample', 'loader-not-tensors', 'flag-a-str',
        'flag-an-int'])
def test_kept_on_device_refuses_before_anything_is_built(make, contains):
    raises(make, contains)


@pytest.mark.skipif(torch.cuda.is_available(), reason='the refusal is for a machine that has no CUDA device')
def test_kept_on_cuda_without_cuda_is_refused():
    raises(lambda: DataBunch.create(TensorDataset(x, y), bs=16, device='cuda', on_device=True),
           "on_device=True with device='cuda': torch sees no CUDA device here")


@pytest.mark.parametrize('samp', [SequentialSampler(range(10)), RandomSampler(range(10)),
                                  RandomSampler(range(10), replacement=True, num_samples=7)],
                         ids=['sequential', 'random', 'with-replacement'])
@pytest.mark.parametrize('drop', [False, True], ids=['keep-last', 'drop-last'])
def test_epoch_index_is_torchs_batching(samp, drop):
    dl_ = DataLoader(TensorDataset(torch.arange(10)), batch_size=None, sampler=BatchSampler(samp, 4, drop))
    torch.manual_seed(2); idx, sizes = batch_path.epoch_index(dl_)
    torch.manual_seed(2); want = [b[0].tolist() for b in dl_]
    assert [b.tolist() for b in idx.split(sizes)] == want


def test_epoch_index_of_any_batch_sampler():
    class Pairs(Sampler):
        def __iter__(self): return iter([[0, 1], [5], [2, 3]])
        def __len__(self): return 3
    idx, sizes = batch_path.epoch_index(DataLoader(TensorDataset(torch.arange(10)), batch_size=None, sampler=Pairs()))
    assert torch.equal(idx, torch.tensor([0, 1, 5, 2, 3])) and sizes == [2, 1, 2]


gib = lambda device: (2**30, 8 * 2**30)  # the free and total memory the check is given: 1 GiB free of 8
big = TensorDataset(torch.zeros(1, 3, 32, 32).expand(100_000, 3, 32, 32), torch.zeros(100_000, dtype=torch.long))


def test_too_big_names_each_set_the_free_memory_and_the_fix():
    cuda = torch.device('cuda')  # never used: the memory is given, and the check refuses before anything moves
    raises(lambda: batch_path.to_device_resident({'train': big, 'valid': big, 'test': None}, cuda, memory=gib),
           'the data takes 1.1 GiB (train 1.1 GiB) and cuda has 1.0 GiB free of 8.0 GiB')  # a shared set counts once
    raises(lambda: batch_path.to_device_resident({'train': big, 'valid': TensorDataset(x, y)}, cuda, memory=gib),
           '(train 1.1 GiB, valid 2.0 KiB)')
    raises(lambda: batch_path.to_device_resident({'train': big}, cuda, memory=gib), 'Leave on_device=False', ValueError)


def test_data_that_fits_on_the_cpu_stays_as_it_is():
    small = TensorDataset(torch.zeros(1000, 4), torch.zeros(1000))
    assert batch_path.to_device_resident({'train': small}, torch.device('cpu'))['train'] is small


def test_byte_sizes_read_as_people_write_them():
    assert [batch_path._fmt_bytes(n) for n in (10, 2048, 3 * 2**20, 5 * 2**30)] == ['10 bytes', '2.0 KiB', '3.0 MiB', '5.0 GiB']


def test_setting_the_device_sets_every_loaders_and_survives_pickling():
    dev = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=16, device='cpu')
    dev.device = 'meta'
    assert {str(d.device) for d in dev.dls} == {'meta'} and dev.device == torch.device('meta')
    dev.device = torch.device('cpu')
    assert pickle.loads(pickle.dumps(dev)).device == torch.device('cpu')
