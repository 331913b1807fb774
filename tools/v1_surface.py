"""How much of fastai v1's documented training-core surface fastbook_core has.

`nbs/v1_surface.json` lists, per module of fastai v1's training core, the public names v1 documents: the targets of
the `show_doc` calls in its docs page (`docs_src/<module>.ipynb`) and the module's `__all__` (for a module with
neither, its top-level public classes and functions). This script maps each v1 module to fastbook_core's module of
the same name and checks every name there (`Class.method` names are looked up on the class, after every module of
fastbook_core has been imported, so that the Learner methods a module attaches are there, as importing fastai v1's
modules attached them).

    python tools/v1_surface.py                 # the table, as text
    python tools/v1_surface.py --markdown      # the table, as Markdown (for a notebook)
    python tools/v1_surface.py --extract REPO  # rebuild nbs/v1_surface.json from a fastai v1 checkout (git repo)

In a notebook: `from v1_surface import measure, render` (with `tools/` on `sys.path`), then `render(measure())`.
"""
from __future__ import annotations
import argparse, ast, importlib, json, pkgutil, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / 'nbs' / 'v1_surface.json'
CORE = ['torch_core', 'basic_data', 'callback', 'basic_train', 'callbacks', 'train', 'metrics']


def _git_show(repo: Path, path: str) -> str | None:
    r = subprocess.run(['git', '-C', str(repo), 'show', f'HEAD:{path}'], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def _public(name: str) -> bool: return not any(part.startswith('_') for part in name.split('.'))


def _doc_names(nb_text: str) -> list[str]:
    "The targets of the `show_doc` calls in the code cells of a docs notebook, in order, without repeats."
    names = []
    for cell in json.loads(nb_text)['cells']:
        if cell['cell_type'] != 'code': continue
        for n in re.findall(r'show_doc\(\s*([\w.]+)', ''.join(cell['source'])):
            if _public(n) and n not in names: names.append(n)
    return names


def _all_names(src: str, sibling) -> list[str] | None:
    "The module's `__all__` (starred parts like `*one_cycle.__all__` expanded through `sibling`), or None."
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
            res = []
            for elt in node.value.elts:
                if isinstance(elt, ast.Constant): res.append(elt.value)
                elif isinstance(elt, ast.Starred): res += sibling(elt.value.value.id) or []
            return res
    return None


def _top_level(src: str) -> list[str]:
    return [n.name for n in ast.parse(src).body
            if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and _public(n.name)]


def extract(repo: Path) -> dict:
    "The v1 surface of the training core, read from a fastai v1 git checkout."
    cb_files = subprocess.run(['git', '-C', str(repo), 'ls-tree', '--name-only', 'HEAD', 'fastai/callbacks/'],
                              capture_output=True, text=True, check=True).stdout.split()
    cb_mods = sorted(Path(f).stem for f in cb_files if f.endswith('.py') and not f.endswith('__init__.py'))
    mods = CORE[:4] + ['callbacks'] + [f'callbacks.{m}' for m in cb_mods] + CORE[5:]
    def src_of(mod): return _git_show(repo, 'fastai/' + ('callbacks/__init__' if mod == 'callbacks' else mod.replace('.', '/')) + '.py')
    def all_of(mod):
        src = src_of(mod)
        return None if src is None else _all_names(src, lambda sub: all_of(f'callbacks.{sub}'))
    commit = subprocess.run(['git', '-C', str(repo), 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()
    res = {'source': 'fastai v1 (github.com/fastai/fastai1): the show_doc targets of docs_src/<module>.ipynb and the '
                     "module's __all__; a module with neither lists its top-level public classes and functions",
           'commit': commit, 'modules': {}}
    for mod in mods:
        nb = _git_show(repo, f'docs_src/{mod}.ipynb')
        doc = _doc_names(nb) if nb and mod != 'callbacks' else []  # docs_src/callbacks.ipynb is an overview page
        alls = all_of(mod)
        names = list(doc)
        for n in alls or []:
            if _public(n) and n not in names: names.append(n)
        sources = (['docs'] if doc else []) + (['__all__'] if alls else [])
        if not names:
            names, sources = _top_level(src_of(mod) or ''), ['top-level definitions']
        res['modules'][mod] = {'target': f'fastbook_core.{mod}', 'from': sources, 'names': names}
    return res


def _resolve(mod, name: str) -> bool:
    obj = mod
    for part in name.split('.'):
        try: obj = getattr(obj, part)
        except Exception: return False  # a property that raises on the class, a missing attribute: absent either way
    return True


def _elsewhere(name: str, modules: dict) -> str | None:
    "The first other fastbook_core module that has `name` (its first component), to hint where it lives here."
    head = name.split('.')[0]
    for mname, m in modules.items():
        if m is not None and head in getattr(m, '__all__', ()) and _resolve(m, name): return mname
    return None


def measure(path: Path = DATA) -> list[dict]:
    "One row per v1 module: its names, those present in the fastbook_core module of the same name, and those missing."
    spec = json.loads(Path(path).read_text())
    sys.path.insert(0, str(ROOT))
    import fastbook_core
    loaded = {}  # every module of the package, so that the Learner methods each one attaches are there (as in v1)
    for info in pkgutil.walk_packages(fastbook_core.__path__, 'fastbook_core.'):
        if info.name.endswith('__main__'): continue
        try: loaded[info.name.removeprefix('fastbook_core.')] = importlib.import_module(info.name)
        except ImportError: pass  # a module whose optional dependency is not installed
    rows = []
    for mod, info in spec['modules'].items():
        m = loaded.get(mod)
        present = [n for n in info['names'] if m is not None and _resolve(m, n)]
        missing = [n for n in info['names'] if n not in present]
        hints = {n: _elsewhere(n, {k: v for k, v in loaded.items() if k != mod}) for n in missing}
        rows.append({'module': mod, 'target': info['target'], 'exists': m is not None, 'n': len(info['names']),
                     'present': len(present), 'missing': missing, 'elsewhere': {n: h for n, h in hints.items() if h}})
    return rows


def render(rows: list[dict], markdown: bool = False) -> str:
    "The table: module, v1 names, present here, missing names; then the totals."
    n, p = sum(r['n'] for r in rows), sum(r['present'] for r in rows)
    def missing(r):
        if not r['exists']: return f"(no module {r['target']})"
        return ', '.join(f"{m} (in {r['elsewhere'][m]})" if m in r['elsewhere'] else m for m in r['missing']) or '-'
    if markdown:
        lines = ['| module | v1 names | present here | missing names |', '|---|---:|---:|---|']
        lines += [f"| {r['module']} | {r['n']} | {r['present']} | {missing(r)} |" for r in rows]
        lines.append(f'| **total** | **{n}** | **{p} ({p / n:.0%})** | **{n - p} missing** |')
        return '\n'.join(lines)
    w = max(len(r['module']) for r in rows)
    lines = [f"{'module':<{w}}  v1 names  present  missing names", '-' * (w + 40)]
    lines += [f"{r['module']:<{w}}  {r['n']:>8}  {r['present']:>7}  {missing(r)}" for r in rows]
    lines += ['-' * (w + 40), f"{'total':<{w}}  {n:>8}  {p:>7}  {n - p} missing ({p / n:.0%} present)"]
    return '\n'.join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--markdown', action='store_true', help='print the table as Markdown')
    ap.add_argument('--extract', metavar='REPO', help='rebuild the data file from a fastai v1 git checkout')
    ap.add_argument('--data', default=str(DATA), help='the data file (default: nbs/v1_surface.json)')
    args = ap.parse_args(argv)
    if args.extract:
        Path(args.data).write_text(json.dumps(extract(Path(args.extract)), indent=1) + '\n')
        print(f'wrote {args.data}')
        return
    print(render(measure(Path(args.data)), markdown=args.markdown))


if __name__ == '__main__': main()
