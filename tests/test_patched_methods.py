"""Classes split across cells (issue 25): every method patched onto a class is declared in it for type checkers, no patched
function takes the name of another module-level one, and mypy sees the patched API as it saw the class-body one."""
import ast, re, subprocess, sys, textwrap
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
MODULES = ['torch_core', 'progress', 'callback', 'basic_data', 'train']
# Classes a module patches but does not define, so it cannot declare the patch in the class: torch's DataLoader gets
# v1's `init_kwargs` (v1 patched torch's DataLoader too).
FOREIGN = {('basic_data', 'DataLoader', 'init_kwargs')}


def _patches(tree):
    "(class, attribute name, module-level function name, kind) for each function a module patches onto a class."
    res, defs = [], {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    found = [(n, d) for n in defs.values() for d in n.decorator_list]
    for s in tree.body:  # the call form: `patch_as(nm='create')(_create)`
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Call):
            found.append((defs[s.value.args[0].id], s.value.func))
    for n, d in found:
            f = d.func if isinstance(d, ast.Call) else d
            if getattr(f, 'id', None) not in ('patch', 'patch_as'): continue
            kw = {k.arg: k.value.value for k in getattr(d, 'keywords', []) if isinstance(k.value, ast.Constant)}
            ann = n.args.args[0].annotation
            cls = ast.unparse(ann)
            cls = re.sub(r'^type\[(.*)\]$', r'\1', cls)
            kind = 'prop' if kw.get('as_prop') or kw.get('set_prop') else 'cls' if n.args.args[0].arg == 'cls' else 'method'
            res.append((cls, kw.get('nm') or n.name, n.name, kind))
    return res


def _declared(tree, cls):
    "The names a class declares under `if TYPE_CHECKING:` (assignments, annotations, stub defs), and those of its body."
    c = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    names, body = set(), set()
    for n in c.body:
        if isinstance(n, ast.If) and ast.unparse(n.test) == 'TYPE_CHECKING':
            for m in n.body:
                if isinstance(m, ast.Assign): names |= {t.id for t in m.targets}
                elif isinstance(m, ast.AnnAssign): names.add(m.target.id)
                elif isinstance(m, ast.FunctionDef): names.add(m.name)
        elif isinstance(n, ast.FunctionDef): body.add(n.name)
    return names, body


@pytest.mark.parametrize('mod', MODULES)
def test_every_patched_method_is_declared_and_shadows_nothing(mod):
    tree = ast.parse((ROOT / 'fastbook_core' / f'{mod}.py').read_text())
    patches = _patches(tree)
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    for cls, name, fn, kind in patches:
        if cls == 'Point' or (mod, cls, name) in FOREIGN: continue
        if kind == 'prop': fn = name  # a property: its setter is a function of another name
        declared, body = _declared(tree, cls)
        assert name in declared, f'{mod}: {cls}.{name} is patched but not declared for type checkers'
        assert name not in body, f'{mod}: {cls}.{name} is both in the class body and patched'
        assert defs.count(fn) == 1 or kind == 'prop', f'{mod}: the patched {fn} shares its name with another module-level definition'
    if mod != 'torch_core': assert patches, f'{mod}: no patched method found (the test would prove nothing)'


def test_patched_methods_exist_at_runtime():
    from fastbook_core.callback import CallbackHandler, OptimWrapper
    from fastbook_core.basic_data import DataBunch, DeviceDataLoader
    for cls in (OptimWrapper, CallbackHandler, DataBunch, DeviceDataLoader):
        mod = sys.modules[cls.__module__]
        for c, name, fn, kind in _patches(ast.parse(Path(mod.__file__).read_text())):
            if c == cls.__name__: assert name in vars(cls), f'{c}.{name}'
    assert isinstance(vars(OptimWrapper)['lr'], property) and vars(OptimWrapper)['lr'].fset is not None
    assert isinstance(vars(DataBunch)['create'], object) and DataBunch.create.__self__ is DataBunch


SCRIPT = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch, DeviceDataLoader
from fastbook_core.callback import CallbackHandler, OptimWrapper

ds = TensorDataset(torch.randn(32, 3), torch.randint(0, 2, (32,)))
data = DataBunch.create(ds, ds, bs=8, device='cpu')
x, y = data.one_batch()
data.batch_size = 4
kind: str = data.device.type
data.device = 'cpu'
dl = DeviceDataLoader.create(ds, bs=4)
b = dl.proc_batch(next(iter(dl.dl)))
opt = OptimWrapper.create(torch.optim.SGD, 0.1, [nn.Linear(3, 2)])
opt.lr = [0.1]
opt.step(); opt.zero_grad()
sd: dict = opt.state_dict()
cbh = CallbackHandler()
cbh.on_train_begin(1, None, [])
stop: bool = cbh.on_epoch_end(None)
'''
WRONG = '''
from fastbook_core.basic_data import DataBunch
from fastbook_core.callback import CallbackHandler, OptimWrapper
def f(data: DataBunch, cbh: CallbackHandler) -> None:
    data.one_bacth()
    cbh.on_train_begin('one', None, [])
    DataBunch.create(None, bs='8')
    data.add_tfm(3, 4)
    OptimWrapper.load_with_state_and_layer_group([], [])
'''


def test_mypy_sees_the_patched_methods(tmp_path):
    pytest.importorskip('mypy')
    (tmp_path / 'ok.py').write_text(SCRIPT); (tmp_path / 'wrong.py').write_text(WRONG)
    r = subprocess.run([sys.executable, '-m', 'mypy', '--no-incremental', '--follow-imports=silent', '--show-error-codes',
                        str(tmp_path / 'ok.py'), str(tmp_path / 'wrong.py')], capture_output=True, text=True, cwd=ROOT)
    errs = re.findall(r'^(\S+\.py):(\d+): error: .*\[([\w-]+)\]$', r.stdout, re.M)
    assert not [e for e in errs if e[0].endswith('ok.py')], r.stdout
    found = {(int(l), c) for f, l, c in errs if f.endswith('wrong.py')}
    assert {l for l, _ in found} == {5, 6, 7, 8, 9}, r.stdout  # each mistake, in a method patched onto its class
    assert (5, 'attr-defined') in found and (6, 'arg-type') in found and (9, 'arg-type') in found, r.stdout
