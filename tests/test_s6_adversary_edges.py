"Review 6's adversary: bad names at a callback's creation, callbacks of another Learner, load_learner's argument slips, an interrupted lr_find."
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner, load_learner
from fastbook_core.callback import Callback
from fastbook_core.callbacks.tracker import SaveModelCallback, TrackEpochCallback
import fastbook_core.train  # lr_find


def _learn(path, silent=True):
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x[:16], y[:16]), bs=16, device='cpu', path=path)
    return Learner(data, nn.Linear(3, 2), silent=silent)


@pytest.mark.parametrize('name', ['', '.', 'x/', '~/x'])
def test_a_name_that_cannot_be_a_file_is_refused_when_the_callback_is_made(tmp_path, name):
    learn = _learn(tmp_path)
    with pytest.raises(ValueError, match='file='):
        SaveModelCallback(learn, name=name)
    with pytest.raises(ValueError, match='file='):
        TrackEpochCallback(learn, name=name)
    assert not (tmp_path / 'models').is_file()


def test_a_callback_made_with_another_learner_is_refused_before_training(tmp_path):
    old, new = _learn(tmp_path / 'old'), _learn(tmp_path / 'new')
    w = new.model.weight.detach().clone()
    with pytest.raises(ValueError, match='SaveModelCallback was made with another Learner'):
        new.fit(1, callbacks=[SaveModelCallback(old)])
    assert torch.equal(new.model.weight.detach(), w) and not (tmp_path / 'old' / 'models').exists()
    new.fit(1, callbacks=[SaveModelCallback(new)])  # its own works


def test_load_learner_names_a_loader_given_as_test_and_an_open_file_given_as_path(tmp_path):
    learn = _learn(tmp_path)
    learn.export()
    with pytest.raises(TypeError, match=r'test=dl.dataset'):
        load_learner(tmp_path, test=DataLoader(TensorDataset(torch.randn(8, 3)), batch_size=4))
    with open(tmp_path / 'export.pkl', 'rb') as f:
        with pytest.raises(TypeError, match=r"give an open file as `file`, `load_learner\('.', f\)`"):
            load_learner(f)
        assert load_learner(tmp_path, f) is not None


def test_an_interrupted_lr_find_does_not_say_it_is_complete(tmp_path, capsys):
    learn = _learn(tmp_path, silent=False)
    class CtrlC(Callback):
        def on_batch_end(self, iteration, **kwargs):
            if iteration == 3: raise KeyboardInterrupt
    learn.callbacks.append(CtrlC())  # a Ctrl-C in the middle of the sweep
    with pytest.raises(KeyboardInterrupt):
        learn.lr_find(num_it=20)
    assert 'LR Finder is complete' not in capsys.readouterr().out
    learn.callbacks.clear()
    learn.lr_find(num_it=10)
    assert 'LR Finder is complete' in capsys.readouterr().out
