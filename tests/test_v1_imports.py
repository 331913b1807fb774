"fastai v1's import paths (issue 27.2, and basics' re-exports of 27.1): what v1 code imports from train and basics."
import importlib
import pytest


def _star(module: str) -> dict:
    ns: dict = {}
    exec(f'from {module} import *', ns)
    ns.pop('__builtins__', None)
    return ns


def test_train_namespace_holds_v1_names():
    "v1's train star-imported basic_data, basic_train, callback and torch_core: `from fastai.train import DataBunch`."
    from fastbook_core.train import DataBunch, DatasetType, Learner, Callback, CallbackHandler, defaults
    import fastbook_core.basic_data as bd, fastbook_core.basic_train as bt, fastbook_core.train as train
    assert DataBunch is bd.DataBunch and Learner is bt.Learner
    for m in ('fastbook_core.basic_data', 'fastbook_core.basic_train', 'fastbook_core.callback'):
        missing = sorted(n for n in importlib.import_module(m).__all__ if not hasattr(train, n))
        assert missing == [], (m, missing)
    # its star import stays v1's list
    assert 'DataBunch' not in train.__all__ and 'fit_one_cycle' in train.__all__


def test_basics_gives_the_callbacks_package():
    ns = _star('fastbook_core.basics')
    import fastbook_core.callbacks as cbs
    assert ns['callbacks'] is cbs
    assert ns['callbacks'].CSVLogger.__name__ == 'CSVLogger'
    assert ns['callbacks'].SaveModelCallback.__name__ == 'SaveModelCallback'


@pytest.mark.parametrize('module', ['torch_core', 'layers', 'basic_data', 'callback', 'basic_train', 'metrics', 'train'])
def test_basics_reexports_every_star_name(module):
    basics = set(_star('fastbook_core.basics'))
    missing = sorted(set(_star(f'fastbook_core.{module}')) - basics)
    assert missing == [], missing


def test_basics_names_of_today():
    ns = _star('fastbook_core.basics')
    for name in ['DataBunch', 'Learner', 'Recorder', 'accuracy', 'fit_one_cycle', 'defaults', 'set_seed', 'to_device',
                 'torch', 'nn', 'F', 'optim', 'np', 'Path', 'partial', 'Tensor', 'Optional', 'Collection', 'Any',
                 'BnFreeze', 'ClassificationInterpretation', 'callbacks']:
        assert name in ns, name


# v1's basics star-imported fastai.layers (`__all__` of fastai/layers.py at 1.0.61): what v1 programs use unqualified
V1_LAYERS = ['AdaptiveConcatPool2d', 'BCEWithLogitsFlat', 'BCEFlat', 'MSELossFlat', 'CrossEntropyFlat', 'Debugger',
             'Flatten', 'Lambda', 'PoolFlatten', 'View', 'ResizeBatch', 'bn_drop_lin', 'conv2d', 'conv2d_trans',
             'conv_layer', 'embedding', 'simple_cnn', 'NormType', 'relu', 'batchnorm_2d', 'trunc_normal_',
             'PixelShuffle_ICNR', 'icnr', 'NoopLoss', 'WassersteinLoss', 'SelfAttention', 'SequentialEx', 'MergeLayer',
             'res_block', 'sigmoid_range', 'SigmoidRange', 'PartialLayer', 'FlattenedLoss', 'BatchNorm1dFlat',
             'LabelSmoothingCrossEntropy', 'PooledSelfAttention2d']

@pytest.mark.parametrize('module', ['fastbook_core.layers', 'fastbook_core.basics'])
def test_v1_layers_names_come_with_the_star_import(module):
    import fastbook_core.layers as layers
    ns = _star(module)
    assert [n for n in V1_LAYERS if n not in ns] == []
    assert all(ns[n] is getattr(layers, n) for n in V1_LAYERS)
    if module == 'fastbook_core.layers': assert sorted(ns) == sorted(V1_LAYERS)  # exactly v1's __all__


@pytest.mark.parametrize('module', ['fastbook_core.core', 'fastbook_core.imports'])
def test_basics_reexports_core_and_imports_after_merge(module):
    "Checked after merge: fastbook_core.core and .imports come from the core helper's branch (issue 27.1)."
    pytest.importorskip(module)
    missing = sorted(set(_star(module)) - set(_star('fastbook_core.basics')))
    assert missing == [], missing


# `time` is not here: fastai v1's imports/core.py never imported it (checked in fastai1's history), so v1's
# `from fastai.basics import *` did not give it, and giving it would shadow a user's `from time import time`.
V1_NAMES = ['os', 're', 'math', 'random', 'warnings', 'Dataset', 'DataLoader', 'TensorDataset',
            'Tuple', 'List', 'Dict', 'Floats', 'PathOrStr', 'StrList', 'KWArgs', 'Rank0Tensor', 'Tensors',
            'LossFunction', 'OptLossFunc', 'TensorOrNumber']

@pytest.mark.parametrize('name', V1_NAMES)
def test_basics_gives_v1_imports_and_aliases_after_merge(name):
    "Checked after merge: v1's imported names and aliases (issue 27.1) arrive with fastbook_core.imports."
    pytest.importorskip('fastbook_core.imports')
    assert name in _star('fastbook_core.basics'), name


def test_callbacks_package_namespace_holds_what_v1_code_imported_from_it():
    "v1 up to 1.0.57 re-exported these from fastai.callbacks (neptune-contrib: `from fastai.callbacks import LearnerCallback`)."
    from fastbook_core.callbacks import Callback, Learner, LearnerCallback
    import fastbook_core.basic_train as bt, fastbook_core.callback as cb
    assert (Callback, Learner, LearnerCallback) == (cb.Callback, bt.Learner, bt.LearnerCallback)
    assert not {'Callback', 'Learner', 'LearnerCallback'} & set(_star('fastbook_core.callbacks'))  # v1.0.61's __all__
