"The repository's own promises: README from the index notebook, CI calling the README's test command."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _readme_commands():
    text = (ROOT / 'README.md').read_text()
    return [l.strip() for l in re.findall(r'^pip install .*$', text, flags=re.M) if 'torch==' in l]


def test_readme_has_the_two_commands():
    cmds = _readme_commands()
    assert any('python -m fastbook_core' in c for c in cmds)
    assert any('nbdev_test' in c and 'pytest' in c for c in cmds)


def test_ci_runs_the_readme_test_command():
    test_cmd = next(c for c in _readme_commands() if 'pytest' in c)
    assert test_cmd in (ROOT / '.ci' / 'run').read_text()


def test_settings_pin_nbdev_2():
    cfg = (ROOT / 'settings.ini').read_text()
    assert 'nbdev==2.4.14' in cfg and 'fastcore>=1.12.27,<2' in cfg and 'execnb<0.2' in cfg and 'ghapi<2' in cfg
    assert 'lib_name = %(repo)s' in cfg and 'repo = fastbook_core' in cfg


# The package's metadata, as setup.py gives it to setuptools (read by running setup.py with `setup` captured).
def _setup_kwargs() -> dict:
    import os, runpy, setuptools
    from unittest import mock
    captured, cwd = {}, os.getcwd()
    os.chdir(ROOT)  # find_packages looks in the current folder, as pip runs setup.py
    try:
        with mock.patch.object(setuptools, 'setup', lambda **kw: captured.update(kw)):
            runpy.run_path(str(ROOT / 'setup.py'), run_name='__main__')
    finally: os.chdir(cwd)
    return captured


def _names(reqs) -> dict:
    from packaging.requirements import Requirement
    return {Requirement(r).name: Requirement(r) for r in reqs}


def test_runtime_requirements_install_beside_fastai_and_lightning():
    "No development tool at run time, and no cap on fastcore: fastai 2.8 needs fastcore>=2.2, nbdev 2 fastcore<2."
    reqs = _names(_setup_kwargs()['install_requires'])
    assert sorted(reqs) == ['fastcore', 'ipywidgets', 'matplotlib', 'numpy', 'torch']
    assert reqs['fastcore'].specifier.contains('2.2.41') and reqs['fastcore'].specifier.contains('1.14.5')
    assert not any(s.operator in ('<', '<=', '==', '~=') for s in reqs['fastcore'].specifier)


def test_torch_range_is_what_ci_tests():
    "The range starts at the oldest release the suite passed on (the README's table), which CI tests too, below 3."
    torch_req = _names(_setup_kwargs()['install_requires'])['torch']
    floor = next(s.version for s in torch_req.specifier if s.operator == '>=')
    assert torch_req.specifier.contains('2.13.0') and torch_req.specifier.contains('2.14.1')
    assert not torch_req.specifier.contains('3.0.0')
    ci = (ROOT / '.ci' / 'run').read_text()
    assert re.search(rf'torch=={re.escape(floor)}(\.0)?\b', ci), f'.ci/run does not test the floor {floor}'
    matrix = re.search(r'torch: \[(.*)\]', (ROOT / '.github' / 'workflows' / 'test.yaml').read_text())
    assert matrix and re.search(rf'"{re.escape(floor)}(\.0)?"', matrix.group(1)), f'the workflow does not test the floor {floor}'
    assert f'PyTorch {floor} or later (below 3)' in (ROOT / 'README.md').read_text()
    assert all('torch==2.13.0' in c for c in _readme_commands())


def test_extras():
    extras = _setup_kwargs()['extras_require']
    assert sorted(extras) == ['all', 'datasets', 'dev', 'mlflow', 'pandas', 'tensorboard']
    assert [list(_names(extras[k])) for k in ('datasets', 'pandas', 'tensorboard', 'mlflow')] == [
        ['scikit-learn'], ['pandas'], ['tensorboard'], ['mlflow-skinny']]
    assert extras['all'] == extras['datasets'] + extras['pandas'] + extras['tensorboard'] + extras['mlflow']
    dev = _names(extras['dev'])
    assert set(_names(extras['all'])) <= set(dev)  # the README's test command installs what every test needs
    for tool in ('nbdev', 'fastcore', 'execnb', 'ghapi', 'pytest', 'hypothesis', 'nbclient', 'ipykernel', 'nbconvert',
                 'nbformat', 'psutil', 'mypy', 'jupytext', 'build'):
        assert tool in dev, tool
    readme = (ROOT / 'README.md').read_text()
    for extra in extras: assert f'| `{extra}` |' in readme, f'README does not say what the {extra} extra adds'


def test_python_version_is_3_11_everywhere():
    "The code uses BaseException.add_note (3.11); settings.ini, the package metadata and the README agree."
    kw = _setup_kwargs()
    assert kw['python_requires'] == '>=3.11'
    versions = [c.rsplit(' ', 1)[1] for c in kw['classifiers'] if c.startswith('Programming Language :: Python :: ')]
    assert versions[0] == '3.11' and '3.10' not in versions
    assert 'min_python = 3.11' in (ROOT / 'settings.ini').read_text()
    readme = (ROOT / 'README.md').read_text()
    assert 'Python 3.11 or later' in readme and 'Python 3.10' not in readme


def test_status_classifier_is_the_settings_status():
    kw = _setup_kwargs()
    assert 'Development Status :: 3 - Alpha' in kw['classifiers']


def test_package_data_ships_every_data_file():
    "Every file of the package that is not Python source or a cache is package data (so in the sdist and the wheel)."
    data = set(_setup_kwargs()['package_data']['fastbook_core'])
    on_disk = {str(p.relative_to(ROOT / 'fastbook_core')) for p in (ROOT / 'fastbook_core').rglob('*')
               if p.is_file() and p.suffix not in ('.py', '.pyc') and '__pycache__' not in p.parts}
    assert data == on_disk
    if (ROOT / 'fastbook_core' / 'py.typed').exists(): assert 'py.typed' in data


def test_tst_flags_are_space_separated():
    "nbdev 2 splits tst_flags on spaces: `notest|slow` would be one flag that no cell has."
    from configparser import ConfigParser
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    assert cfg['DEFAULT']['tst_flags'].split() == ['notest', 'slow']


def test_ci_tests_the_wheel_before_the_readme_test_command():
    ci = (ROOT / '.ci' / 'run').read_text()
    test_cmd = next(c for c in _readme_commands() if 'pytest' in c)
    assert (ROOT / 'tools' / 'test_wheel.py').exists()
    assert ci.index('\npython tools/test_wheel.py\n') < ci.rindex(test_cmd)


def test_no_private_names_imported_across_modules():
    "Modules share only public names (issue 20): `from .x import _y` would tie one module to another's internals."
    import ast
    pkg = Path(__file__).parent.parent / 'fastbook_core'
    bad = []
    for f in sorted(pkg.rglob('*.py')):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('fastbook_core')):
                bad += [f'{f.relative_to(pkg)}: {a.name} from {node.module}' for a in node.names
                        if a.name.startswith('_') and a.name != '__version__']
    assert not bad, bad


def test_module_graph_points_down():
    "Nothing imports upward (torch_core -> basic_data/progress/callback -> basic_train -> callbacks/ -> train -> basics)."
    import ast
    order = ['torch_core', 'progress', 'basic_data', 'callback', 'checkpoint', 'basic_train', 'metrics', 'test_utils', 'callbacks',
             'train', 'distributed', 'datasets', 'cli', 'basics', '__main__']
    rank = lambda mod: order.index(mod.split('.')[0]) if mod.split('.')[0] in order else None
    pkg = Path(__file__).parent.parent / 'fastbook_core'
    bad = []
    for f in sorted(pkg.rglob('*.py')):
        me = '.'.join(f.relative_to(pkg).with_suffix('').parts)
        if me == '_modidx' or rank(me) is None: continue
        tree = ast.parse(f.read_text())
        type_only = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and 'TYPE_CHECKING' in ast.unparse(i.test)
                     for n in ast.walk(i)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or id(node) in type_only: continue
            if node.level: target = '.'.join(me.split('.')[:len(me.split('.')) - node.level] + ([node.module] if node.module else []))
            elif (node.module or '').startswith('fastbook_core.'): target = node.module[len('fastbook_core.'):]
            else: continue
            if not target: continue   # `from . import x` inside a package
            if rank(target) is not None and rank(target) > rank(me) and not me.startswith(target.split('.')[0]):
                bad.append(f'{me} imports {target}')
    assert not bad, bad


def test_v1_surface_is_measured_without_tools_in_the_notebook():
    "basic_train's table of fastai v1's names computes what tools/v1_surface.py does, and over 95% are here."
    import importlib.util, json, re
    root = Path(__file__).parent.parent
    spec = importlib.util.spec_from_file_location('v1_surface', root / 'tools' / 'v1_surface.py')
    v1 = importlib.util.module_from_spec(spec); spec.loader.exec_module(v1)
    rows = v1.measure()
    n, p = sum(r['n'] for r in rows), sum(r['present'] for r in rows)
    assert p / n > 0.95, v1.render(rows)
    nb = json.loads((root / 'nbs' / '04_basic_train.ipynb').read_text())
    table = next(''.join(o['data']['text/markdown']) for c in nb['cells'] if c['cell_type'] == 'code'
                 for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {}) and '| **total** |' in ''.join(o['data']['text/markdown']))
    assert f'| **total** | **{n}** | **{p} (' in table, table[-200:]
