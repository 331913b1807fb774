"""What keeps the library working on the oldest torch that `requirements` admits (issue 30), and what a user sees when a
file cannot be written or read (issue 26).

torch 2.6 lists the globals of a checkpoint itself (`get_unsafe_globals_in_checkpoint`), 2.5 has no alias for a
global's name, 2.4 has no `safe_globals` context: torch_core falls back to its own code there. These tests run the
fallbacks on any torch (by hiding the newer API), and compare them with torch's own where it has it."""
import errno, functools, io, os, pickle, tempfile, zipfile
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn, serialization
from fastbook_core.test_utils import synth_learner
from fastbook_core import torch_core
from fastbook_core.torch_core import CheckpointError, atomic_write, load_checkpoint, try_save, unpickle_blob


class Pair(nn.Module):  # a class of the test's own, as a user's model is
    def __init__(self): super().__init__(); self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 1)


def _saved(obj, **kw) -> bytes:
    buf = io.BytesIO(); torch.save(obj, buf, **kw); return buf.getvalue()


FILES = {  # what a checkpoint may hold: plain weights, numpy numbers (v1's optimizer states), code of every kind
    'state_dict': lambda: {'w': torch.ones(2), 'n': 3, 'd': {'x': [1.5, 'a']}},
    'numpy': lambda: {'lr': np.float64(1e-3), 'dtype': np.dtype('float32'), 'i': np.int64(2)},
    'partial': lambda: {'f': functools.partial(max, 1)},
    'path': lambda: {'p': Path('x')},
    'linear': lambda: nn.Linear(2, 3),
    'own_model': lambda: Pair(),
    'sequential': lambda: nn.Sequential(nn.Linear(2, 2), nn.ReLU()),
}


@pytest.mark.parametrize('what', sorted(FILES))
def test_the_fallback_lists_what_torch_lists(what):
    "On a torch that has `get_unsafe_globals_in_checkpoint`, the fallback for older ones gives the same names."
    if not hasattr(serialization, 'get_unsafe_globals_in_checkpoint'):
        pytest.skip(f'torch {torch.__version__} has no get_unsafe_globals_in_checkpoint to compare with (new in 2.6): '
                    'the fallback alone runs here, in the tests below')
    blob = _saved(FILES[what]())
    assert torch_core._unsafe_globals_before_2_6(io.BytesIO(blob)) == sorted(serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(blob)))


def test_the_fallback_names_the_classes_of_a_pickled_model():
    names = torch_core._unsafe_globals_before_2_6(io.BytesIO(_saved(Pair())))
    assert {'torch.nn.modules.linear.Linear', f'{__name__}.Pair'} <= set(names), names
    assert torch_core._unsafe_globals_before_2_6(io.BytesIO(_saved({'w': torch.ones(2)}))) == []


def test_the_fallback_lists_nothing_for_the_legacy_format_and_torchscript(tmp_path):
    "As torch 2.6's function raises there, `_unsafe_globals` gives no names and the refusal names what torch says."
    legacy = io.BytesIO(_saved(nn.Linear(2, 1), _use_new_zipfile_serialization=False))
    with pytest.raises(Exception): torch_core._unsafe_globals_before_2_6(legacy)
    assert torch_core._unsafe_globals(legacy) == [] and legacy.tell() == 0
    torch.jit.save(torch.jit.script(nn.Linear(2, 1)), tmp_path / 'ts.pt')
    with pytest.raises(ValueError, match='not a checkpoint written by torch.save'): torch_core._unsafe_globals_before_2_6(tmp_path / 'ts.pt')


def test_pickle_globals_reads_every_protocol():
    "torch.save writes protocol 2 (GLOBAL, Python 2 names); plain pickle writes 4 and 5 (STACK_GLOBAL, memoized strings)."
    from collections import OrderedDict
    obj = [functools.partial(max, 1), functools.partial(min, 2), Path('x'), OrderedDict(a=1), functools.partial(max, 3)]
    want = {'functools.partial', 'builtins.max', 'builtins.min', 'collections.OrderedDict', f'{type(Path("x")).__module__}.{type(Path("x")).__qualname__}'}
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert torch_core._pickle_globals(pickle.dumps(obj, protocol=proto)) == want, proto


@pytest.fixture
def old_torch(monkeypatch):
    "torch as 2.4 was: no `get_unsafe_globals_in_checkpoint` (2.6) and no `safe_globals` context (2.5)."
    monkeypatch.delattr(serialization, 'get_unsafe_globals_in_checkpoint', raising=False)
    monkeypatch.delattr(serialization, 'safe_globals', raising=False)


def test_loading_and_refusing_work_without_the_newer_api(old_torch, tmp_path):
    torch.save(FILES['numpy'](), tmp_path / 'np.pth')
    assert load_checkpoint(tmp_path / 'np.pth')['lr'] == np.float64(1e-3)
    torch.save(FILES['partial'](), tmp_path / 'code.pth')
    with pytest.raises(CheckpointError, match=r'would import and run .*functools\.partial.*trust_code=True'):
        load_checkpoint(tmp_path / 'code.pth', trust_code=False)
    blob = _saved(functools.partial(max, 1))
    with pytest.raises(CheckpointError, match='builtins.max'): unpickle_blob(blob, 'x.pkl', 'the function')
    ok = {'functools.partial': functools.partial, 'builtins.max': max}
    assert unpickle_blob(blob, 'x.pkl', 'the function', allow=ok.get)(3) == 3


def test_the_safe_globals_fallback_gives_back_what_was_allowed_before(old_torch):
    before = list(serialization.get_safe_globals())
    blob = _saved({'f': functools.partial(max, 1)})
    with torch_core._safe_globals([functools.partial, max]):
        assert functools.partial in serialization.get_safe_globals()
        assert torch.load(io.BytesIO(blob), weights_only=True)['f'](3) == 3  # allowed here
    assert set(serialization.get_safe_globals()) == set(before)
    with pytest.raises(pickle.UnpicklingError): torch.load(io.BytesIO(blob), weights_only=True)  # and refused again
    with pytest.raises(KeyError), torch_core._safe_globals([functools.partial]): raise KeyError('inside')
    assert set(serialization.get_safe_globals()) == set(before)


def _renamed_global(blob: bytes, old: bytes, new: bytes) -> bytes:
    "A copy of the torch.save zip `blob` whose data.pkl names the global `old` (b'module\\nname') as `new`."
    src, out = zipfile.ZipFile(io.BytesIO(blob)), io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith('/data.pkl'): assert old in data; data = data.replace(old, new)
            z.writestr(info, data)
    return out.getvalue()


def test_sets_complex_numbers_and_bytes_are_data_on_every_torch(tmp_path):
    "torch 2.6 allows them, 2.5 not sets, 2.4 none; every pickled nn.Module holds a set (an export's model), every numpy number bytes."
    data = {'s': {1, 2}, 'c': complex(1, 2), 'b': b'\x00\xff', 'ba': bytearray(b'ab')}
    torch.save(data, tmp_path / 'data.pth')
    assert load_checkpoint(tmp_path / 'data.pth') == data
    allow = {f'{__name__}.Pair': Pair, 'torch.nn.modules.linear.Linear': nn.Linear}.get
    assert isinstance(unpickle_blob(_saved(Pair()), 'x.pkl', 'the model', allow=allow), Pair)


def test_numpy_1_scalars_load(tmp_path):
    "A file pickled under numpy 1 names its scalars numpy.core.multiarray.scalar; torch before 2.6 takes no alias."
    blob = _saved({'lr': np.float64(0.25)})
    if b'numpy._core.multiarray\nscalar' in blob:  # numpy 2 wrote it: give it numpy 1's name
        blob = _renamed_global(blob, b'numpy._core.multiarray\nscalar', b'numpy.core.multiarray\nscalar')
    assert b'numpy.core.multiarray\nscalar' in blob
    (tmp_path / 'v1.pth').write_bytes(blob)
    loaded = load_checkpoint(tmp_path / 'v1.pth')['lr']
    assert type(loaded) is np.float64 and loaded == 0.25


# What a user sees (issue 26): a file that cannot be written, a file that is not a checkpoint.

def test_writing_through_a_file_names_the_file(tmp_path):
    (tmp_path / 'afile').write_text('mine')
    for target in (tmp_path / 'afile' / 'x.pth', tmp_path / 'afile' / 'models' / 'x.pth'):
        with pytest.raises(OSError, match=r'afile is a file, not a folder.*Rename or remove that file') as e:
            with atomic_write(target) as f: f.write(b'x')
        assert isinstance(e.value, (NotADirectoryError, FileExistsError)), repr(e.value)
    assert (tmp_path / 'afile').read_text() == 'mine'


def test_learn_save_into_a_path_through_a_file(tmp_path):
    learn = synth_learner()
    (tmp_path / 'afile').write_text('mine')
    learn.path = tmp_path / 'afile'
    with pytest.raises(OSError, match=r'Cannot write .*afile.models.m\.pth: .*afile is a file, not a folder.*`model_dir`'):
        learn.save('m')


@pytest.mark.parametrize('code,says', [(errno.EACCES, 'is not writable'), (errno.EROFS, 'read-only file system'),
                                       (errno.ENOSPC, 'no space is left')])
def test_an_unwritable_folder_is_named_with_the_fix(tmp_path, monkeypatch, code, says):
    "Root writes anywhere, so the refusal the file system gives is made here: the message is what is tested."
    def refuse(*a, **kw): raise OSError(code, os.strerror(code), str(tmp_path))
    monkeypatch.setattr(tempfile, 'mkstemp', refuse)
    learn = synth_learner(); learn.path = tmp_path
    with pytest.raises(OSError, match=rf'Cannot write .*m\.pth: .*{says}.*(Write|write elsewhere)') as e: learn.save('m')
    assert e.value.errno == code and not list(tmp_path.rglob('*.pth'))
    with pytest.raises(OSError, match=says) as e: try_save({'w': torch.ones(1)}, tmp_path, 'w.pth')
    assert any('writable folder' in n for n in getattr(e.value, '__notes__', []))


@pytest.mark.skipif(os.name != 'posix' or os.geteuid() == 0, reason='a read-only folder is writable by root')
def test_a_read_only_folder(tmp_path):
    ro = tmp_path / 'ro'; ro.mkdir(); ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=r'ro is not writable'):
            with atomic_write(ro / 'x.pth') as f: f.write(b'x')
    finally: ro.chmod(0o755)


def test_a_text_file_is_not_called_an_interrupted_write(tmp_path):
    (tmp_path / 'notes.txt').write_text('epoch 1: 0.5\nepoch 2: 0.4\n')
    with pytest.raises(CheckpointError, match=r"notes\.txt is not a torch file .*the text 'epoch 1: 0\.5.*zip header") as e:
        load_checkpoint(tmp_path / 'notes.txt')
    assert 'interrupted write' not in str(e.value) and 'KeyError' not in str(e.value)
    with pytest.raises(CheckpointError, match="the text 'epoch"): load_checkpoint(io.BytesIO(b'epoch 1: 0.5'))
    (tmp_path / 'junk.bin').write_bytes(b'\x00\x01\x02junk')
    with pytest.raises(CheckpointError, match=r"not a torch file .*the bytes b'\\x00\\x01"): load_checkpoint(tmp_path / 'junk.bin')
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'empty\.pth is empty \(0 bytes\)'): load_checkpoint(tmp_path / 'empty.pth')


def test_an_open_file_is_read_from_where_it_stands():
    "A file object positioned after a header of the caller's: what it holds is named from there, and it is left there."
    buf = io.BytesIO(b'\x00HEADER\x00plain text'); buf.seek(8)
    with pytest.raises(CheckpointError, match="the text 'plain text'"): load_checkpoint(buf)
    assert buf.tell() == 8


@pytest.mark.parametrize('trust_code,fix', [(None, r'torch\.load\(f, weights_only=False\)'), (False, r'pass `trust_code=True`')])
def test_a_whole_pickled_model_says_how_to_go_on(tmp_path, trust_code, fix):
    torch.save(Pair(), tmp_path / 'model.pth')
    with pytest.raises(CheckpointError, match=rf'Refusing to load .*model\.pth.*Pair.*whole pickled model.*{fix}.*`model\.state_dict\(\)`'):
        load_checkpoint(tmp_path / 'model.pth', trust_code=trust_code)
    assert isinstance(load_checkpoint(tmp_path / 'model.pth', trust_code=True), Pair)


def test_learn_load_of_a_whole_model_points_to_the_state_dict(tmp_path):
    learn = synth_learner()
    torch.save(learn.model, learn.path / 'whole.pth')
    with pytest.raises(CheckpointError, match=r'whole pickled model.*save `model\.state_dict\(\)`'): learn.load(learn.path / 'whole.pth')
    torch.save(learn.model.state_dict(), learn.path / 'weights.pth')
    learn.load(learn.path / 'weights.pth')  # what the message advises loads
