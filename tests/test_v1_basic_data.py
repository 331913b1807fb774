"Conformance with fastai v1's documentation of `basic_data` (docs_src/basic_data.ipynb), and its files under attack."
import io, json, os, pickle, warnings, zipfile
from pathlib import Path
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset
import fastbook_core.basic_data as bd
from fastbook_core.basic_data import *
from fastbook_core.torch_core import CheckpointError

SURFACE = json.loads((Path(__file__).parent.parent / 'nbs' / 'v1_surface.json').read_text())
# v1 names we do not carry, and why (the notebook says the same)
OMITTED = {'DataBunch.show_batch': "shows items through v1's data block API (ItemList.reconstruct/show_xys)",
           'DataBunch.export': "saves v1's data block state (LabelList.get_state); Learner.export keeps the classes",
           'DataBunch.load_empty': 'loads what DataBunch.export wrote'}


@pytest.mark.parametrize('name', [n if n not in OMITTED else pytest.param(n, marks=pytest.mark.skip(reason=OMITTED[n]))
                                  for n in SURFACE['modules']['basic_data']['names']])
def test_every_documented_name_exists(name):
    obj = bd
    for part in name.split('.'): obj = getattr(obj, part)


class ArrayDataset(Dataset):
    "v1's documentation example: a dataset of numpy arrays with a `c` attribute."
    def __init__(self, x, y): self.x, self.y, self.c = x, y, 2
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.y[i]


class Squares(Dataset):
    "A dataset of its own class (it has to be pickled to be saved)."
    def __len__(self): return 12
    def __getitem__(self, i): return torch.tensor([float(i)]), torch.tensor([float(i * i)])


def tensors(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, (x.sum(1) > 0).long()


def bunch(n_train=32, n_valid=12, **kwargs):
    x, y = tensors(n_train + n_valid)
    return DataBunch.create(TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:]),
                            device='cpu', **kwargs)


def test_custom_dataset_docs_example():
    rng = np.random.default_rng(0)
    train_ds = ArrayDataset(rng.random((10, 3, 3)), rng.random((10, 1)).round())
    valid_ds = ArrayDataset(rng.random((10, 3, 3)), rng.random((10, 1)).round())
    data = DataBunch.create(train_ds, valid_ds, bs=2, num_workers=1)
    x, y = data.one_batch()
    assert (x.shape, y.shape, x.dtype) == ((2, 3, 3), (2, 1), torch.float64)
    assert data.train_dl.num_workers == 1  # one_batch loads in the main process, then restores the workers
    assert data.c == 2                     # read from the training dataset, as in v1


def test_create_follows_v1():
    data = bunch(bs=8)
    assert data.valid_dl.batch_size == 8 == data.batch_size                 # val_bs defaults to bs
    assert len(data.train_dl) == 4 and len(data.valid_dl) == 2              # train drops its last batch, valid keeps it
    assert data.dls == [data.train_dl, data.valid_dl, data.fix_dl, data.single_dl]
    assert data.single_dl.batch_size == 1 and data.single_ds is data.valid_ds
    assert data.fix_ds is data.train_ds and len(data.fix_dl) == 4
    assert torch.equal(torch.cat([y for _, y in data.fix_dl]), data.train_ds.tensors[1])  # in order, every item
    assert torch.equal(torch.cat([y for _, y in data.valid_dl]), data.valid_ds.tensors[1])
    for t in DatasetType: assert data.dl(t) is {1: data.train_dl, 2: data.valid_dl, 3: None, 4: data.single_dl, 5: data.fix_dl}[t.value]
    data.add_test(TensorDataset(torch.randn(5, 3)))
    assert data.dls[-1] is data.test_dl and len(data.dls) == 5 and data.test_ds is data.test_dl.dataset
    assert bunch(bs=8, val_bs=3).valid_dl.batch_size == 3
    assert [e.name for e in DatasetType] == ['Train', 'Valid', 'Test', 'Single', 'Fix']


def test_loaders_wrap_device_and_tfms():
    x, y = tensors()
    seen = []
    def tfm(b):
        seen.append(1)
        return b[0] * 0, b[1]
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu', dl_tfms=[tfm])
    assert all(isinstance(d, DeviceDataLoader) for d in data.dls) and data.device == torch.device('cpu')
    assert data.one_batch()[0].abs().sum() == 0 and seen
    data.remove_tfm(tfm)
    assert data.one_batch()[0].abs().sum() > 0
    data.add_tfm(tfm)
    assert all(tfm in d.tfms for d in data.dls)


def test_databunch_from_dataloaders():
    x, y = tensors()
    data = DataBunch(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, drop_last=True),
                     DataLoader(TensorDataset(x, y), batch_size=16), device='cpu', path='somewhere')
    assert data.path == Path('somewhere')
    assert isinstance(data.fix_dl.dl.sampler, SequentialSampler) and data.fix_dl.batch_size == 8
    assert len(data.fix_dl) == 5  # the last incomplete batch is kept
    inf = DataBunch(None, None, None, device='cpu', path='.')  # what load_learner builds
    assert inf.dls == [] and inf.empty_val and inf.train_ds is None
    inf.add_test(TensorDataset(x))
    assert inf.dls == [inf.test_dl]


def test_one_batch_and_one_item():
    data = bunch(bs=8)
    x, y = data.one_batch(DatasetType.Valid)
    assert torch.equal(y, data.valid_ds.tensors[1][:8]) and not x.requires_grad
    xi, yi = data.one_item(torch.tensor([1., 2., 3.]))
    assert torch.equal(xi, torch.tensor([[1., 2., 3.]])) and yi.tolist() == [0]
    with pytest.raises(ValueError, match='no Test set'): data.one_batch(DatasetType.Test)


def test_sanity_check_warns_as_v1():
    class Bad(Dataset):
        def __len__(self): return 8
        def __getitem__(self, i): return torch.zeros(i + 1), 0
    with pytest.warns(UserWarning, match='collate samples of your dataset'):
        DataBunch.create(Bad(), bs=4, device='cpu')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        DataBunch.create(Bad(), bs=4, device='cpu', no_check=True)
        bunch(bs=8).sanity_check()  # a good dataset: silent


def test_device_data_loader():
    x, y = tensors(10)
    ddl = DeviceDataLoader.create(TensorDataset(x, y), bs=4, device='cpu')
    assert [len(b[1]) for b in ddl] == [4, 4, 2] and ddl.batch_size == 4
    ddl.add_tfm(lambda b: (b[0], b[1] + 1))
    assert torch.equal(next(iter(ddl))[1], y[:4] + 1)
    assert torch.equal(ddl.proc_batch((x[:2], y[:2]))[1], y[:2] + 1)
    new = ddl.new(batch_size=5)
    assert new.batch_size == 5 and len(new) == 2 and len(new.tfms) == 1
    shuffled = ddl.new(shuffle=True)
    assert isinstance(shuffled.dl.sampler.sampler, RandomSampler)
    ddl.batch_size = 3
    assert len(ddl) == 4
    coll = DeviceDataLoader(DataLoader(TensorDataset(x, y), batch_size=5), 'cpu', collate_fn=lambda s: len(s))
    assert list(coll.dl) == [5, 5] and coll.collate_fn(['a']) == 1


def test_init_kwargs_and_intercept_args():
    x, y = tensors(10)
    dl = DataLoader(TensorDataset(x, y), batch_size=3, shuffle=True, drop_last=True, num_workers=0)
    kw = dl.init_kwargs
    assert {k: kw[k] for k in ('batch_size', 'shuffle', 'drop_last', 'sampler', 'batch_sampler', 'num_workers')} == \
        dict(batch_size=3, shuffle=True, drop_last=True, sampler=None, batch_sampler=None, num_workers=0)
    assert len(DataLoader(dl.dataset, **{**kw, 'shuffle': False})) == 3
    class MyLoader(DataLoader): __init__ = intercept_args
    rec = MyLoader(TensorDataset(x, y), batch_size=4, timeout=5)
    assert rec.init_kwargs['batch_size'] == 4 and rec.init_kwargs['timeout'] == 5 and len(rec) == 3
    assert DataLoader.__init__ is not intercept_args  # torch's constructor is left alone


def test_generator_makes_the_shuffling_reproducible():
    x, y = tensors(64)
    def epochs(seed, **kw):
        data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=8, device='cpu',
                                generator=torch.Generator().manual_seed(seed), **kw)
        res = []
        for e in range(2):
            torch.manual_seed(100 + e)  # anything else drawing from the global generator does not matter
            res.append(torch.cat([b for _, b in data.train_dl]))
            _ = [b for b in data.valid_dl]  # nor does validation in between
        return torch.stack(res)
    for kw in ({}, {'batched_fetch': False}):
        a, b = epochs(0, **kw), epochs(0, **kw)
        assert torch.equal(a, b)
        assert not torch.equal(a[0], a[1])          # a new order each epoch
        assert not torch.equal(a, epochs(1, **kw))  # another seed, another order


def test_save_and_load_data(tmp_path):
    data = bunch(n_train=80, bs=8, path=tmp_path, classes=['neg', 'pos'])
    data.add_test(TensorDataset(torch.randn(5, 3)))
    data.save()
    assert (tmp_path / 'data_save.pkl').is_file()
    loaded = load_data(tmp_path, device='cpu')
    assert loaded.classes == ['neg', 'pos'] and loaded.path == tmp_path
    for a, b in zip((data.train_ds, data.valid_ds, data.test_ds), (loaded.train_ds, loaded.valid_ds, loaded.test_ds)):
        assert all(torch.equal(s, t) for s, t in zip(a.tensors, b.tensors))
    assert loaded.batch_size == 64 == loaded.valid_dl.batch_size  # the arguments are not saved (v1): defaults
    assert load_data(tmp_path, bs=4, val_bs=2, device='cpu').valid_dl.batch_size == 2
    buf = io.BytesIO(); data.save(buf); buf.seek(0)
    assert load_data(tmp_path, buf, bs=8).classes == ['neg', 'pos']
    # the file holds tensors and plain values only
    state = torch.load(tmp_path / 'data_save.pkl', weights_only=True)
    assert state['classes'] == {'plain': ['neg', 'pos']}


def test_load_data_keeps_classes_of_numpy_types(tmp_path):
    data = bunch(bs=8, path=tmp_path, classes=np.array(['a', 'b']))
    data.save('np.pkl')
    assert load_data(tmp_path, 'np.pkl', bs=8).classes == ['a', 'b']


def test_custom_dataset_needs_trust_code(tmp_path):
    DataBunch.create(Squares(), bs=4, path=tmp_path, device='cpu').save('sq.pkl')
    with pytest.raises(CheckpointError, match=r'Refusing to unpickle the train set.*test_v1_basic_data\.Squares.*trust_code=True'):
        load_data(tmp_path, 'sq.pkl')
    data = load_data(tmp_path, 'sq.pkl', bs=4, trust_code=True)
    assert isinstance(data.train_ds, Squares) and data.one_batch(DatasetType.Fix)[1].flatten().tolist() == [0, 1, 4, 9]


def test_saving_an_unpicklable_dataset_says_why(tmp_path):
    class Local(Squares): pass  # a class defined in a function cannot be pickled
    data = DataBunch.create(Local(), bs=4, path=tmp_path, device='cpu')
    with pytest.raises(Exception) as e: data.save('local.pkl')
    assert any('has to be pickled' in n for n in getattr(e.value, '__notes__', []))
    assert not (tmp_path / 'local.pkl').exists()


# --- an adversary's files --------------------------------------------------------------------------------------------
class Boom:
    "Unpickling this runs a shell command (it would create the marker file)."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))


def good_state(tmp_path):
    bunch(bs=8, path=tmp_path).save('good.pkl')
    return torch.load(tmp_path / 'good.pkl', weights_only=True)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='No saved DataBunch'): load_data(tmp_path, 'nope.pkl')
    bunch(bs=8, path=tmp_path).save('other.pkl')
    with pytest.raises(FileNotFoundError, match='Found: other.pkl'): load_data(tmp_path, 'nope.pkl')


def test_hostile_outer_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    torch.save({'format': bd._DATA_FORMAT, 'train': Boom(marker)}, tmp_path / 'evil.pkl')
    with pytest.raises(CheckpointError, match=r'Refusing to load .*evil\.pkl.*system.*trust_code=True'):
        load_data(tmp_path, 'evil.pkl')
    with open(tmp_path / 'evil2.pkl', 'wb') as f: pickle.dump(Boom(marker), f)  # plain pickle, not torch's format
    with pytest.raises(CheckpointError, match=r'evil2\.pkl is incomplete or corrupt, or not a torch file.*trust_code=True') as e:
        load_data(tmp_path, 'evil2.pkl')
    assert 'will likely succeed' not in str(e.value)  # torch's advice to turn the safety off is not repeated
    assert not marker.exists()


def test_hostile_inner_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    state = good_state(tmp_path)
    buf = io.BytesIO(); torch.save(Boom(marker), buf)
    state['valid'] = {'pickled': buf.getvalue(), 'type': 'innocent.Dataset'}
    torch.save(state, tmp_path / 'evil.pkl')
    with pytest.raises(CheckpointError, match=r'valid set.*would import and run .*system'):
        load_data(tmp_path, 'evil.pkl')
    state['valid'] = None; state['classes'] = {'pickled': buf.getvalue()}
    torch.save(state, tmp_path / 'evil3.pkl')
    with pytest.raises(CheckpointError, match='classes'): load_data(tmp_path, 'evil3.pkl')
    assert not marker.exists()


@pytest.mark.parametrize('damage', ['empty', 'truncated', 'garbage', 'flipped'])
def test_damaged_files(tmp_path, damage):
    good_state(tmp_path)
    blob = (tmp_path / 'good.pkl').read_bytes()
    bad = {'empty': b'', 'truncated': blob[:len(blob) // 2], 'garbage': os.urandom(500),
           'flipped': blob[:200] + bytes(b ^ 0xFF for b in blob[200:260]) + blob[260:]}[damage]
    (tmp_path / 'bad.pkl').write_bytes(bad)
    with pytest.raises(CheckpointError, match='bad.pkl'): load_data(tmp_path, 'bad.pkl')


@pytest.mark.parametrize('change', ['not a dict', 'no marker', 'missing part', 'no train', 'bad tensors',
                                    'lengths differ', 'scalar tensor', 'unknown form', 'bad classes'])
def test_files_of_the_wrong_shape(tmp_path, change):
    state = good_state(tmp_path)
    if change == 'not a dict': state = [torch.ones(2)]
    elif change == 'no marker': state['format'] = 'something/else'
    elif change == 'missing part': del state['valid']
    elif change == 'no train': state['train'] = None
    elif change == 'bad tensors': state['train'] = {'tensors': ['x', 'y']}
    elif change == 'lengths differ': state['train'] = {'tensors': [torch.ones(4, 2), torch.ones(3)]}
    elif change == 'scalar tensor': state['train'] = {'tensors': [torch.tensor(1.)]}
    elif change == 'unknown form': state['train'] = {'pickled': 'not bytes'}
    elif change == 'bad classes': state['classes'] = 'ab'
    torch.save(state, tmp_path / 'odd.pkl')
    with pytest.raises(CheckpointError, match='odd.pkl'): load_data(tmp_path, 'odd.pkl')


def test_legacy_torch_format_of_a_good_file_loads(tmp_path):
    state = good_state(tmp_path)
    torch.save(state, tmp_path / 'legacy.pkl', _use_new_zipfile_serialization=False)
    assert len(load_data(tmp_path, 'legacy.pkl', bs=8).train_ds) == 32


def test_load_data_arguments_are_checked(tmp_path):
    good_state(tmp_path)
    with pytest.raises(ValueError, match='bs=0'): load_data(tmp_path, 'good.pkl', bs=0)
    with pytest.raises(ValueError, match='fewer than one batch'): load_data(tmp_path, 'good.pkl', bs=100)
    with pytest.raises(TypeError, match='file=123'): load_data(tmp_path, 123)
