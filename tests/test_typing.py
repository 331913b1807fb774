"Type checkers see the whole API: the Learner's own methods, the ones patched on it, and the ones that train, callbacks and distributed add (issues 20, 25)."
import ast, inspect, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest

here = Path(__file__).parent / 'typecheck'
root = here.parent.parent
scripts = [str(here / 'user_script.py'), str(here / 'wrong_script.py')]
expected = {('wrong_script.py', 8): 'arg-type', ('wrong_script.py', 9): 'attr-defined',
            ('wrong_script.py', 10): 'attr-defined', ('wrong_script.py', 11): 'arg-type'}

@pytest.fixture(scope='module')
def errors():
    "mypy's errors on both scripts (one run: it takes a while), as {(file, line): code}."
    pytest.importorskip('mypy')
    r = subprocess.run([sys.executable, '-m', 'mypy', '--no-incremental', '--follow-imports=silent', '--show-error-codes',
                        *scripts], capture_output=True, text=True, cwd=root)
    found = {(Path(f).name, int(l)): c for f, l, c in re.findall(r'^(\S+\.py):(\d+): error: .*\[([\w-]+)\]$', r.stdout, re.M)}
    assert found or r.returncode == 0, r.stdout + r.stderr   # mypy ran
    return found, r.stdout

def test_a_users_script_type_checks_cleanly(errors):
    found, out = errors
    assert not [k for k in found if k[0] == 'user_script.py'], out

def test_mistakes_in_a_users_script_are_found(errors):
    found, out = errors
    assert {k: v for k, v in found.items() if k[0] == 'wrong_script.py'} == expected, out

def _pyright() -> list | None:
    "The command that runs pyright (the PyPI package, which needs node), or None."
    if shutil.which('pyright'): return ['pyright']
    try: import pyright  # noqa: F401
    except ImportError: return None
    return [sys.executable, '-m', 'pyright']

def test_pyright_agrees_with_mypy(errors):
    "pyright reports the same lines as mypy: nothing in the user's script, each mistake in the wrong one."
    cmd = _pyright()
    if cmd is None or not shutil.which('node'): pytest.skip('pyright (pip install pyright, with node) is not installed')
    r = subprocess.run(cmd + ['--pythonpath', sys.executable, *scripts], capture_output=True, text=True, cwd=root)
    found = {(Path(f).name, int(l)) for f, l in re.findall(r'^\s*(\S+\.py):(\d+):\d+ - error', r.stdout, re.M)}
    assert found == set(errors[0]) == set(expected), r.stdout + r.stderr

def test_the_users_script_runs(tmp_path):
    "The script type-checks, and it also runs (to_parallel needs `fastbook_core.distributed` imported: it imports it)."
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(root), os.environ.get('PYTHONPATH', '')]),
           'MPLBACKEND': 'Agg', 'FASTBOOK_PROGRESS': 'none'}
    r = subprocess.run([sys.executable, scripts[0]], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<class 'torch.Tensor'>" in r.stdout

def test_the_package_ships_py_typed():
    import fastbook_core
    assert (Path(fastbook_core.__file__).parent / 'py.typed').is_file()

# --- methods attached with `@patch`: every one declared for type checkers, none shadowing a module function ---

def _class_names(tree: ast.Module, cls: str) -> tuple[set, set]:
    "The methods defined in the body of `cls`, and the names it declares under `if TYPE_CHECKING:`."
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    defined = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    declared = set()
    for n in node.body:
        if isinstance(n, ast.If) and ast.unparse(n.test) == 'TYPE_CHECKING':
            declared |= {t.id for a in n.body if isinstance(a, ast.Assign) for t in a.targets if isinstance(t, ast.Name)}
    return defined, declared

def _patched(tree: ast.Module) -> dict:
    "The module's functions decorated with `@patch`: name -> the class of their `self`."
    res = {}
    for n in tree.body:
        if isinstance(n, ast.FunctionDef) and any(ast.unparse(d) == 'patch' for d in n.decorator_list):
            res[n.name] = ast.unparse(n.args.args[0].annotation)
    return res

def _bindings(tree: ast.Module) -> list:
    "Every name bound at the top level of the module (defs, classes, assignments, imports), with repeats."
    names = []
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.append(n.name)
        elif isinstance(n, ast.Assign): names += [t.id for t in n.targets if isinstance(t, ast.Name)]
        elif isinstance(n, (ast.Import, ast.ImportFrom)): names += [a.asname or a.name.split('.')[0] for a in n.names]
    return names

def test_every_patched_method_is_declared_and_shadows_no_module_function():
    import fastbook_core.basics  # noqa: F401  (every module that attaches methods to Learner)
    import fastbook_core.distributed  # noqa: F401
    from fastbook_core import basic_train
    from fastbook_core.basic_train import Learner, Recorder
    tree = ast.parse(Path(basic_train.__file__).read_text())
    patched = _patched(tree)
    assert {'save', 'load', 'export', 'split', 'predict', 'plot_losses'} <= set(patched)  # the sections' methods
    bindings = _bindings(tree)
    for cls in (Learner, Recorder):
        defined, declared = _class_names(tree, cls.__name__)
        mine = {n for n, c in patched.items() if c == cls.__name__}
        assert mine <= declared, f"{cls.__name__}: patched but not declared for type checkers: {sorted(mine - declared)}"
        for name in mine:
            assert name not in defined, f"{cls.__name__}.{name} is both in the class body and patched"
            assert bindings.count(name) == 1, f"the patched {name} shadows (or is shadowed by) another module-level {name}"
            code, mod_code = cls.__dict__[name].__code__, getattr(basic_train, name).__code__
            assert (code.co_filename, code.co_firstlineno) == (mod_code.co_filename, mod_code.co_firstlineno), name  # one function
        # every method on the class at runtime, wherever it was attached from, is visible to type checkers
        attached = {k for k, v in vars(cls).items()  # (`_orig_*`: fastcore's `patch` keeps the base class's method there)
                    if inspect.isfunction(v) and not k.startswith(('__', '_orig_'))}
        assert attached <= defined | declared, f"{cls.__name__}: methods type checkers do not see: {sorted(attached - defined - declared)}"
    assert not set(patched) & {'fit', 'validate', 'get_preds'}  # fastai v1's module functions stay functions
    assert inspect.signature(basic_train.fit).parameters['epochs'] and basic_train.validate.__module__ == basic_train.__name__
