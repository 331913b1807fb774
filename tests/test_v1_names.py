"""fastai v1 programs find the names they use unqualified (issue 27.1): every name of v1's `imports/core.py`,
`imports/torch.py`, `core.py` and `torch_core.py` that is not part of the vision, text, tabular or data-block APIs
comes with `from fastbook_core.torch_core import *` (and with `basics`), as v1's star imports gave it.

The lists are v1's names as fastai/fastai1's source has them (parsed from github:fastai/fastai1 at HEAD, top-level
imports, definitions and assignments, private names aside) and are kept here as data."""
import importlib.util
import pytest

V1 = {
'imports/core.py': [
    'csv', 'gc', 'gzip', 'os', 'pickle', 'shutil', 'sys', 'warnings', 'yaml', 'io', 'subprocess', 'math', 'plt',
    'np', 'pd', 'random', 'scipy', 'abc', 'collections', 'hashlib', 'itertools', 'json', 'operator', 'pathlib',
    'mimetypes', 'inspect', 'typing', 'functools', 'importlib', 'weakref', 'html', 're', 'requests', 'tarfile',
    'numbers', 'tempfile', 'bz2', 'abstractmethod', 'abstractproperty', 'Counter', 'defaultdict', 'namedtuple',
    'OrderedDict', 'Iterable', 'Sized', 'concurrent', 'ProcessPoolExecutor', 'ThreadPoolExecutor', 'copy',
    'deepcopy', 'dataclass', 'field', 'InitVar', 'Enum', 'IntEnum', 'partial', 'reduce', 'set_trace', 'patches',
    'patheffects', 'array', 'cos', 'exp', 'log', 'sin', 'tan', 'tanh', 'attrgetter', 'itemgetter', 'Path',
    'warn', 'contextmanager', 'MasterBar', 'ProgressBar', 'Patch', 'Series', 'DataFrame', 'BufferedWriter',
    'BytesIO', 'pkg_resources', 'master_bar', 'progress_bar', 'Number', 'Any', 'AnyStr', 'Callable',
    'Collection', 'Dict', 'Hashable', 'Iterator', 'List', 'Mapping', 'NewType', 'Optional', 'Sequence', 'Tuple',
    'TypeVar', 'Union', 'SimpleNamespace', 'pd_max_colwidth', 'try_import', 'have_min_pkg_version'],
'imports/torch.py': [
    'torch', 'F', 'ByteTensor', 'DoubleTensor', 'FloatTensor', 'HalfTensor', 'LongTensor', 'ShortTensor',
    'Tensor', 'nn', 'optim', 'as_tensor', 'BatchSampler', 'DataLoader', 'Dataset', 'Sampler', 'TensorDataset',
    'weight_norm', 'spectral_norm'],
'core.py': [
    'AnnealFunc', 'ArgStar', 'BatchSamples', 'DataFrameOrChunks', 'FilePathList', 'Floats', 'ImgLabel',
    'ImgLabels', 'IntsOrStrs', 'KeyFunc', 'KWArgs', 'ListOrItem', 'ListRules', 'ListSizes', 'NPArrayableList',
    'NPArrayList', 'NPArrayMask', 'NPImage', 'OptDataFrame', 'OptListOrItem', 'OptRange', 'OptStrTuple',
    'OptStats', 'PathOrStr', 'PathLikeOrBinaryStream', 'PBar', 'Point', 'Points', 'Sizes', 'SplitArrayList',
    'StartOptEnd', 'StrList', 'Tokens', 'OptStrList', 'num_cpus', 'defaults', 'is_listy', 'is_tuple', 'is_dict',
    'is_pathlike', 'noop', 'PrePostInitMeta', 'chunks', 'recurse', 'first_el', 'to_int', 'ifnone', 'is1d',
    'uniqueify', 'idx_dict', 'find_classes', 'arrays_split', 'random_split', 'listify', 'camel2snake',
    'even_mults', 'extract_kwargs', 'partition', 'partition_by_cores', 'series2cat', 'TfmList', 'ItemBase',
    'recurse_eq', 'download_url', 'range_of', 'arange_of', 'join_path', 'join_paths', 'loadtxt_str',
    'save_texts', 'df_names_to_idx', 'one_hot', 'index_row', 'func_args', 'has_arg', 'split_kwargs_by_func',
    'array', 'EmptyLabel', 'Category', 'MultiCategory', 'FloatItem', 'text2html_table', 'parallel', 'subplots',
    'show_some', 'get_tmp_file', 'compose', 'PrettyString', 'float_or_x', 'bunzip', 'working_directory'],
'torch_core.py': [
    'OrderedDict', 'DistributedDataParallel', 'AffineMatrix', 'BoolOrTensor', 'FloatOrTensor', 'IntOrTensor',
    'ItemsList', 'LambdaFunc', 'LayerFunc', 'ModuleList', 'NPArray', 'OptOptimizer', 'ParamList', 'Rank0Tensor',
    'SplitFunc', 'SplitFuncOrIdxList', 'TensorOrNumber', 'TensorOrNumList', 'TensorImage', 'TensorImageSize',
    'Tensors', 'Weights', 'AffineFunc', 'HookFunc', 'LogitTensorImage', 'LossFunction', 'MetricFunc',
    'MetricFuncList', 'MetricsList', 'OptLossFunc', 'OptMetrics', 'OptSplitFunc', 'PixelFunc', 'LightingFunc',
    'fastai_types', 'bn_types', 'bias_types', 'is_pool_type', 'no_wd_types', 'AdamW', 'tensor', 'Module',
    'np_address', 'to_detach', 'to_data', 'to_cpu', 'to_half', 'to_float', 'to_device', 'data_collate',
    'requires_grad', 'has_params', 'trainable_params', 'children', 'num_children', 'range_children',
    'ParameterModule', 'children_and_parameters', 'flatten_model', 'first_layer', 'last_layer',
    'split_model_idx', 'split_model', 'get_param_groups', 'split_no_wd_params', 'set_bn_eval', 'batch_to_half',
    'bn2float', 'model2half', 'init_default', 'cond_init', 'apply_leaf', 'apply_init', 'in_channels',
    'ModelOnCPU', 'NoneReduceOnCPU', 'model_type', 'np2model_tensor', 'trange_of', 'to_np', 'grab_idx', 'logit',
    'logit_', 'set_all_seed', 'uniform', 'log_uniform', 'rand_bool', 'uniform_int', 'one_param', 'try_int',
    'get_model', 'flatten_check', 'remove_module_load', 'num_distrib', 'rank_distrib', 'distrib_barrier',
    'add_metrics', 'torch_save', 'try_save', 'np_func'],
}

# what is left out of the star import, and why (each a documented difference, on the imports and core pages)
LEFT_OUT = {
    'yaml': 'v1 read its config file with it (datasets): not a requirement; `fastbook_core.imports.yaml` on first use',
    'requests': "v1's downloads: not a requirement; `fastbook_core.imports.requests` on first use",
    'scipy': "v1's vision transforms and lr_find's spline: not a requirement; `fastbook_core.imports.scipy` on first use",
    'pkg_resources': 'deprecated by setuptools; `have_min_pkg_version` uses importlib.metadata',
    'MasterBar': 'fastprogress: `fastbook_core.progress`', 'ProgressBar': 'fastprogress: `fastbook_core.progress`',
    'master_bar': 'fastprogress: `fastbook_core.progress`', 'progress_bar': 'fastprogress: `fastbook_core.progress`',
    'pd_max_colwidth': "pandas' display width for the data block API's show methods",
    **{n: 'the data block API (items, labels, folders, downloads, tables and texts)' for n in (
        'find_classes', 'series2cat', 'ItemBase', 'download_url', 'join_path', 'join_paths', 'loadtxt_str', 'save_texts',
        'df_names_to_idx', 'EmptyLabel', 'Category', 'MultiCategory', 'FloatItem', 'text2html_table', 'subplots',
        'show_some', 'bunzip')},
}
PANDAS = {'pd', 'Series', 'DataFrame'}  # v1 required pandas; here only where it is installed
HAVE_PANDAS = importlib.util.find_spec('pandas') is not None
# v1's core.py helpers that live in torch_core here (so `fastbook_core.core` lacks them; the torch_core star has them)
IN_TORCH_CORE = {'is_listy', 'PrePostInitMeta', 'first_el', 'ifnone', 'listify', 'camel2snake', 'even_mults', 'range_of'}


def wanted(file):
    return [n for n in V1[file] if n not in LEFT_OUT and (HAVE_PANDAS or n not in PANDAS)]


def star(module):
    ns = {}
    exec(f'from {module} import *', ns)
    return ns


@pytest.mark.parametrize('file', list(V1))
def test_torch_core_star_import_gives_v1s_names(file):
    ns = star('fastbook_core.torch_core')
    missing = [n for n in wanted(file) if n not in ns]
    assert not missing, f'{file}: {missing}'


@pytest.mark.parametrize('file', list(V1))
def test_basics_star_import_gives_them_too(file):
    ns = star('fastbook_core.basics')
    missing = [n for n in wanted(file) if n not in ns]
    assert not missing, f'basics lacks {file}: {missing}'


def test_imports_and_core_have_their_own_v1_names():
    imports, core = star('fastbook_core.imports'), star('fastbook_core.core')
    assert not [n for n in wanted('imports/core.py') + wanted('imports/torch.py') if n not in imports]
    assert not [n for n in wanted('core.py') if n not in core and n not in IN_TORCH_CORE]


def test_names_are_v1s_objects():
    import math, random, typing, numpy as np, torch
    from torch.utils.data import TensorDataset
    ns = star('fastbook_core.torch_core')
    assert ns['random'] is random and ns['math'] is math and ns['np'] is np and ns['F'] is torch.nn.functional
    assert ns['TensorDataset'] is TensorDataset and ns['Optional'] is typing.Optional and ns['Callable'] is typing.Callable
    assert ns['exp'] is np.exp  # numpy's, as v1's `from numpy import exp`
    assert ns['Floats'] == typing.Union[float, typing.Collection[float]]
    assert ns['defaults'] is star('fastbook_core.core')['defaults']  # one namespace of defaults, as in v1


def test_left_out_modules_are_there_on_first_use():
    import fastbook_core.imports as imports
    for name in ('scipy', 'yaml', 'requests'):
        if importlib.util.find_spec(name) is None: continue
        assert getattr(imports, name).__name__ == name
    with pytest.raises(AttributeError, match='no attribute'): imports.not_a_v1_name


def test_v1_code_with_unqualified_names_runs():
    ns = star('fastbook_core.torch_core')
    exec("""
def pick(items: StrList, lrs: Floats = 0.1, path: PathOrStr = '.', **kwargs: KWArgs) -> Tensors:
    random.seed(0); np.random.seed(0)
    ds = TensorDataset(torch.arange(4.)[:, None], torch.arange(4))
    dl = DataLoader(ds, batch_size=2)
    return [F.relu(x) for x, _ in dl]
out = pick(['a'])
""", ns)
    assert len(ns['out']) == 2
