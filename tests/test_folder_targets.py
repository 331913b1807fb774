"A name that is a folder (issue 26, E9): load and load_learner say so; save and export refuse it and keep the folder."
import pytest
import torch

from fastbook_core.basic_train import load_learner
from fastbook_core.checkpoint import CheckpointIsFolderError, check_not_folder, read_checkpoint, read_export
from fastbook_core.metrics import mean_absolute_error
from fastbook_core.test_utils import synth_learner
from fastbook_core.torch_core import CheckpointError, CheckpointNotFoundError


def folder(p):
    p.mkdir(parents=True); (p / 'keep.txt').write_text('mine')
    return p


def kept(p): return sorted(x.name for x in p.iterdir()) == ['keep.txt'] and (p / 'keep.txt').read_text() == 'mine'


def test_load_of_a_folder_says_it_is_a_folder():
    learn = synth_learner()
    d = folder(learn.path / 'models' / 'adir.pth')
    with pytest.raises(CheckpointIsFolderError, match=r"adir\.pth is a folder, not a checkpoint file: name a file") as e:
        learn.load('adir')
    assert isinstance(e.value, CheckpointError) and isinstance(e.value, IsADirectoryError)
    assert not isinstance(e.value, CheckpointNotFoundError) and 'No file at' not in str(e.value)
    with pytest.raises(CheckpointIsFolderError): learn.load(d)  # the absolute path too
    with pytest.raises(CheckpointIsFolderError): read_checkpoint(d)
    assert kept(d)


@pytest.mark.parametrize('name', ['adir', 'adir.pth', 'sub/adir'])
def test_save_onto_a_folder_is_refused_and_the_folder_kept(name):
    learn = synth_learner()
    learn.fit(1)
    d = folder(learn._model_file(name))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    for with_opt in (True, False):
        with pytest.raises(IsADirectoryError, match=r"is a folder, not a checkpoint file: give `save` another name"):
            learn.save(name, with_opt=with_opt)
    assert kept(d) and not list(d.parent.glob('.*.tmp'))  # no temporary file left either
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, before[k])
    learn.save('other')  # another name works
    assert learn._model_file('other').is_file()


def test_save_model_callback_onto_a_folder_stops_the_fit_before_anything_is_lost():
    from fastbook_core.callbacks.tracker import SaveModelCallback
    learn = synth_learner()
    d = folder(learn.path / 'models' / 'best.pth')
    with pytest.raises(IsADirectoryError, match='best.pth is a folder'):
        learn.fit(2, callbacks=[SaveModelCallback(learn, name='best')])
    assert kept(d)


def test_export_onto_a_folder_is_refused_before_writing_or_destroying():
    learn = synth_learner()
    d = folder(learn.path / 'export.pkl')
    with pytest.raises(IsADirectoryError, match=r"export\.pkl is a folder, not an export file: give `export` another file name"):
        learn.export(destroy=True)
    assert kept(d) and learn.model is not None  # not destroyed
    learn.export('export2.pkl')
    assert load_learner(learn.path, 'export2.pkl').model is not None


def test_load_learner_of_a_folder_says_it_is_a_folder():
    learn = synth_learner()
    d = folder(learn.path / 'export.pkl')
    with pytest.raises(CheckpointIsFolderError, match=r"export\.pkl is a folder, not an export file: `file` names the export"):
        load_learner(learn.path)
    with pytest.raises(CheckpointIsFolderError): read_export(d)
    assert kept(d)


def test_check_not_folder_passes_files_names_and_open_files(tmp_path):
    import io
    (tmp_path / 'f.pth').write_bytes(b'x')
    for ok in (tmp_path / 'f.pth', tmp_path / 'new.pth', str(tmp_path / 'new.pth'), io.BytesIO()):
        check_not_folder(ok, 'a checkpoint file', 'fix')
    with pytest.raises(CheckpointIsFolderError, match='is a folder, not a thing: fix it'):
        check_not_folder(str(tmp_path), 'a thing', 'fix it')


# ------------------------------------------------ load_learner's keywords (E6): the Learner's settings, and `path`

def test_load_learner_keywords_replace_the_files_settings():
    learn = synth_learner(metrics=[mean_absolute_error])
    learn.export()
    inf = load_learner(learn.path, metrics=[], callback_fns=[], opt_func=torch.optim.SGD, wd=0.3, model_dir='elsewhere')
    assert (inf.metrics, inf.opt_func, inf.wd, inf.model_dir) == ([], torch.optim.SGD, 0.3, 'elsewhere')
    assert load_learner(learn.path).metrics == [mean_absolute_error]  # without them: the file's


def test_load_learner_path_by_keyword_is_the_folder_and_the_learners_path(tmp_path):
    learn = synth_learner()
    learn.export('e.pkl')
    inf = load_learner(path=learn.path, file='e.pkl')
    assert inf.path == learn.path
    with pytest.raises(TypeError, match="multiple values for argument 'path'"):
        load_learner(learn.path, 'e.pkl', path=tmp_path)
    inf.path = tmp_path  # what the docs say to do instead: later saves go there
    inf.save('w', with_opt=False)
    assert (tmp_path / 'models' / 'w.pth').is_file()


def test_load_learner_refuses_data_by_name():
    learn = synth_learner()
    learn.export()
    with pytest.raises(TypeError, match="load_learner makes the Learner's data"):
        load_learner(learn.path, data=learn.data)


def test_torch_core_writers_and_readers_refuse_folders(tmp_path):
    # the low-level helpers DataBunch.save/load and others use: a folder is named, never replaced
    from fastbook_core.torch_core import atomic_write, load_checkpoint, CheckpointError
    d = tmp_path / 'x.pth'; d.mkdir(); (d / 'keep').write_text('1')
    with pytest.raises(IsADirectoryError, match='is a folder'):
        with atomic_write(d) as f: f.write(b'0')
    assert (d / 'keep').read_text() == '1' and not list(tmp_path.glob('.x.pth.*'))
    with pytest.raises(CheckpointError, match='is a folder, not a file to load'): load_checkpoint(d)
