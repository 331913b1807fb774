"trust_code is the flag that turns the safe load off: anything but a bool is refused by name (review 6 adversary #1)."
import io
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch, load_data
from fastbook_core.basic_train import Learner, load_learner
from fastbook_core.checkpoint import read_export
from fastbook_core.torch_core import load_checkpoint, unpickle_blob


class MyNet(nn.Linear): pass  # a class of the test's own: only trust_code=True unpickles it


@pytest.fixture
def exported(tmp_path):
    x, y = torch.randn(16, 2), torch.randint(0, 2, (16,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=4, device='cpu', path=tmp_path)
    learn = Learner(data, MyNet(2, 2), silent=True)
    learn.export()
    return tmp_path


@pytest.mark.parametrize('flag', ['False', 'True', 'no', 1, 0.0, [], None])
def test_a_flag_that_is_not_a_bool_is_refused_before_anything_is_unpickled(exported, flag):
    with pytest.raises(TypeError, match='is not a bool: pass trust_code=True only for a file you trust'):
        load_learner(exported, trust_code=flag)
    with pytest.raises(TypeError, match='trust_code='):
        read_export(exported / 'export.pkl', trust_code=flag)
    with pytest.raises(TypeError, match='trust_code='):
        unpickle_blob(b'', 'x', 'nothing', trust_code=flag)


def test_bools_work_as_before(exported):
    with pytest.raises(Exception, match='MyNet'):
        load_learner(exported)  # safe by default: the class of the test is refused
    assert isinstance(load_learner(exported, trust_code=True).model, MyNet)
    assert isinstance(load_learner(exported, trust_code=np.bool_(True)).model, MyNet)


def test_load_checkpoint_and_load_data_check_it_too(tmp_path):
    torch.save({'a': torch.ones(1)}, tmp_path / 'x.pth')
    assert load_checkpoint(tmp_path / 'x.pth', trust_code=None)['a'].item() == 1
    with pytest.raises(TypeError, match="trust_code='False'"):
        load_checkpoint(tmp_path / 'x.pth', trust_code='False')
    x, y = torch.randn(16, 2), torch.randint(0, 2, (16,))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=4, device='cpu', path=tmp_path)
    data.save('data.pkl')
    with pytest.raises(TypeError, match="trust_code='yes'"):
        load_data(tmp_path, 'data.pkl', trust_code='yes')
