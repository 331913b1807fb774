"""Check that the notebooks are committed executed: examples carry their outputs, and no output is huge.

    python tools/check_outputs.py                      # every notebook in nbs/
    python tools/check_outputs.py nbs/04_basic_train.ipynb ...

The notebooks are read on GitHub, rendered by Quarto without being run, and turned into the README: what is not
in the committed outputs, nobody sees. A *visible* code cell is one a reader sees: not exported (`#| export`,
`exporti`, `exports`), not `#| hide`, not `#| include: false`, not `#| eval: false` (never run). A notebook fails
when:

- it has visible code cells and not one output (it was never executed: run `python tools/execute_nbs.py NB`);
- a visible cell shows a `show_doc`, ends in an expression that is not a call (`learn.recorder.lrs[:3]`), or calls
  `fit`, `fit_one_cycle`, `lr_find` or a `plot`, and has no output (a silent example: make it visible, e.g.
  `silent=False`, or hide the cell);
- an output is an error (a traceback), or a live widget (it renders nowhere without its kernel: the display must
  leave a static copy, as the progress bars do);
- the notebook is larger than `--max-kb` (1000 KB) or one output larger than `--max-output-kb` (500 KB): big
  images and long logs make the repository heavy and the pages slow (plot smaller, print less).

It prints each failing notebook and cell (`nbs/NB.ipynb cell N: why`, N counting from 0, with the cell's first
line) and exits 1; it exits 0 and prints a one-line summary when all pass.
"""
import argparse, ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
_HIDDEN = re.compile(r'^#\|\s*(export|exporti|exports|hide|default_exp\b|include:\s*false|eval:\s*false)', re.M)
_SHOWS = re.compile(r'(?:^|[^\w.])show_doc\(|\.(?:fit|fit_one_cycle|fit_fc|lr_find)\(|(?:^|[^\w.])fit\(|'
                    r'\.plot(?:_\w+)?\(|(?:^|[^\w.])plot_\w+\(', re.M)


def source(cell) -> str: return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']


def visible(cell) -> bool:
    "A code cell a reader sees and that runs: not exported, hidden, excluded or `eval: false`."
    return cell['cell_type'] == 'code' and bool(source(cell).strip()) and not _HIDDEN.search(source(cell))


def _code(src: str) -> str:
    "`src` without cell directives and IPython magics (`%time`, `!ls`), so that it parses as Python."
    return '\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in src.splitlines())


def needs_output(src: str) -> str | None:
    "Why a visible cell with source `src` must have an output, or None if it need not."
    try: tree = ast.parse(_code(src))
    except SyntaxError: return None
    code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith('#'))
    m = _SHOWS.search(code)
    if m: return f'calls {m.group(0).strip("(.").strip()}'
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not isinstance(tree.body[-1].value, (ast.Call, ast.Await, ast.Constant)):
        return 'ends in an expression'
    return None


def _size(o) -> int: return len(json.dumps(o))
def _str(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)  # nbformat stores long text as lines


def check_notebook(path: Path, max_kb: float = 1000., max_output_kb: float = 500.) -> list[str]:
    "The problems of notebook `path`, one line each (empty if it passes)."
    nb = json.loads(path.read_text(encoding='utf-8'))
    cells, problems = nb['cells'], []
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    first = lambda c: next((l for l in source(c).splitlines() if l.strip() and not l.startswith('#|')), '')[:70]
    where = lambda i, c: f'{rel} cell {i} ({first(c)!r})'
    vis = [(i, c) for i, c in enumerate(cells) if visible(c)]
    if vis and not any(c.get('outputs') for c in cells if c['cell_type'] == 'code'):
        problems.append(f'{rel}: {len(vis)} visible code cells and no output at all: it was committed without being '
                        f'run (python tools/execute_nbs.py {rel})')
    else:
        for i, c in vis:
            why = needs_output(source(c))
            if why and not c.get('outputs'):
                problems.append(f'{where(i, c)}: {why} but shows nothing (a silent example? make it visible, e.g. '
                                f'silent=False, or `#| hide` the cell)')
    for i, c in enumerate(cells):
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error':
                problems.append(f'{where(i, c)}: an error output ({o.get("ename")}: {str(o.get("evalue"))[:100]})')
            if WIDGET_MIME in o.get('data', {}):
                problems.append(f'{where(i, c)}: a live widget, which renders nowhere without its kernel '
                                f'(text/plain: {_str(o["data"].get("text/plain", ""))[:60]!r}): leave a static display')
            if _size(o) > max_output_kb * 1024:
                problems.append(f'{where(i, c)}: an output of {_size(o) / 1024:.0f} KB (cap {max_output_kb:.0f} KB): '
                                'plot smaller or print less')
    size = path.stat().st_size
    if size > max_kb * 1024:
        big = sorted(((sum(_size(o) for o in c.get('outputs', [])), i) for i, c in enumerate(cells)), reverse=True)[:3]
        big = [(s, i) for s, i in big if s >= 1024]
        problems.append(f'{rel}: {size / 1024:.0f} KB (cap {max_kb:.0f} KB); largest outputs: '
                        + ', '.join(f'cell {i} {s / 1024:.0f} KB' for s, i in big))
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('notebooks', nargs='*', type=Path, help='notebooks to check (default: every notebook in nbs/)')
    p.add_argument('--max-kb', type=float, default=1000., help='largest notebook file, in KB (default 1000)')
    p.add_argument('--max-output-kb', type=float, default=500., help='largest single output, in KB (default 500)')
    args = p.parse_args(argv)
    nbs = [n.resolve() for n in args.notebooks] or sorted(NBS.glob('*.ipynb'))
    problems, bad = [], 0
    for nb in nbs:
        found = check_notebook(nb, args.max_kb, args.max_output_kb)
        problems += found; bad += bool(found)
    for line in problems: print(line)
    if problems:
        print(f'check_outputs: {bad} of {len(nbs)} notebooks fail ({len(problems)} problems). Notebooks are committed '
              'executed: python tools/execute_nbs.py NB, then commit.', file=sys.stderr)
        return 1
    print(f'check_outputs: {len(nbs)} notebooks carry their outputs.')
    return 0


if __name__ == '__main__': sys.exit(main())
