"""The chapter measure of issue 25, on every notebook in nbs/: each reads as a chapter.

(a) no exported cell (`#| export`/`#| exports`) over 60 lines, unless its first line is `# one cell: <why>`;
(b) never more than 2 `show_doc(...)` calls in a row without a markdown cell or an example/test code cell between;
(c) no notebook touches `sys.path` or imports from tools/;
(d) the first cell is an H1 chapter title `# module: what it is`, followed by a one-line subtitle.
Each notebook is its own test, and a failure lists every cell that breaks the measure.
"""
import json, re
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parent.parent / 'nbs'
NOTEBOOKS = sorted(NBS.glob('*.ipynb'))
MAX_LINES = 60
_directive = re.compile(r'^\s*#\|\s*(\S+)')
_show_doc = re.compile(r'^\s*show_doc\(', re.M)


def cells(nb: Path) -> list[dict]:
    "The notebook's cells, each with its type, source text and directives."
    res = []
    for i, c in enumerate(json.loads(nb.read_text())['cells']):
        src = ''.join(c['source'])
        lines = src.splitlines()
        dirs = [m.group(1) for l in lines if (m := _directive.match(l))]
        body = [l for l in lines if not _directive.match(l)]
        res.append({'i': i, 'type': c['cell_type'], 'src': src, 'dirs': dirs, 'body': body})
    return res


def long_cells(cs: list[dict]) -> list[str]:
    "(a) exported cells over the limit that do not say why they are one cell."
    res = []
    for c in cs:
        if c['type'] != 'code' or not {'export', 'exports'} & set(c['dirs']): continue
        body = [l for l in c['body']]
        while body and not body[-1].strip(): body.pop()
        first = next((l for l in body if l.strip()), '')
        if len(body) > MAX_LINES and not first.startswith('# one cell:'):
            res.append(f"cell {c['i']}: an exported cell of {len(body)} lines (> {MAX_LINES}) without '# one cell: <why>'")
    return res


def show_doc_runs(cs: list[dict]) -> list[str]:
    "(b) runs of more than 2 show_doc calls with no markdown cell or example between them."
    res, run, start = [], 0, None
    def close():
        if run > 2: res.append(f"cells {start}-{last}: {run} show_doc calls in a row with no sentence or example between")
    last = None
    for c in cs:
        if c['type'] == 'markdown':
            close(); run, start = 0, None; continue
        if c['type'] != 'code': continue
        code = [l for l in c['body'] if l.strip() and not l.strip().startswith('#')]
        n = len(_show_doc.findall('\n'.join(code)))
        if n and all(_show_doc.match(l) or l.startswith((' ', '\t', ')')) for l in code):  # a cell of show_doc calls only
            if run == 0: start = c['i']
            run, last = run + n, c['i']
        elif {'export', 'exports', 'exporti'} & set(c['dirs']) or not code: continue  # a definition is not an example
        else:
            if n:  # an example that also shows docs: its calls start a new run
                close(); run, start, last = n, c['i'], c['i']
            else: close(); run, start = 0, None
    close()
    return res


_sys_path = re.compile(r'\bsys\.path\b')
_tools = re.compile(r'^\s*(from\s+(tools|v1_surface)\b|import\s+(tools|v1_surface)\b)|[\'"](\.\./)?tools/?[\'"]', re.M)

def tools_imports(cs: list[dict]) -> list[str]:
    "(c) cells that touch sys.path or import from tools/."
    return [f"cell {c['i']}: touches sys.path or imports from tools/" for c in cs
            if c['type'] == 'code' and (_sys_path.search(c['src']) or _tools.search(c['src']))]


_title = re.compile(r'^# `?[\w.]+`?: \S.*$')  # a module name may be in backticks (`__main__` would read as bold)

def title(cs: list[dict]) -> list[str]:
    "(d) the first cell: `# module: what it is`, then a one-line subtitle."
    if not cs or cs[0]['type'] != 'markdown': return ['cell 0: not a markdown title cell']
    lines = [l for l in cs[0]['src'].splitlines() if l.strip()]
    if not lines or not _title.match(lines[0]): return [f"cell 0: the H1 {lines[0] if lines else ''!r} is not `# module: what it is`"]
    if len(lines) != 2 or lines[1].startswith('#'):
        return [f"cell 0: the title must be followed by exactly one subtitle line (found {len(lines) - 1})"]
    return []


def home_title(cs: list[dict]) -> list[str]:
    "(d) for the home page (index.ipynb, also the README): the project's name as its H1, then a one-line subtitle."
    lines = [l for l in cs[0]['src'].splitlines() if l.strip()] if cs and cs[0]['type'] == 'markdown' else []
    return [] if len(lines) == 2 and lines[0] == '# fastbook_core' else ["cell 0: the home page's title is not `# fastbook_core` and a subtitle"]


def measure(nb: Path) -> list[str]:
    cs = cells(nb)
    return long_cells(cs) + show_doc_runs(cs) + tools_imports(cs) + (home_title(cs) if nb.name == 'index.ipynb' else title(cs))


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_reads_as_a_chapter(nb):
    problems = measure(nb)
    assert not problems, f"{nb.name}:\n  " + '\n  '.join(problems)


def _nb(cells_):
    return [{'i': i, 'type': t, 'src': s, 'dirs': [m.group(1) for l in s.splitlines() if (m := _directive.match(l))],
             'body': [l for l in s.splitlines() if not _directive.match(l)]} for i, (t, s) in enumerate(cells_)]

def test_the_measure_finds_what_it_measures():
    "Each rule fails on a notebook that breaks it, and passes the same notebook fixed."
    long = '#| export\n' + '\n'.join(f'x{i} = {i}' for i in range(61))
    test_long = _nb([('code', long)])
    assert long_cells(test_long) and not long_cells(_nb([('code', '#| export\n# one cell: a class body\n' + long[10:])]))
    assert not long_cells(_nb([('code', long.replace('#| export', '#| hide'))]))
    docs = [('code', 'show_doc(a)'), ('code', 'show_doc(b)\nshow_doc(c)')]
    assert show_doc_runs(_nb(docs)) and not show_doc_runs(_nb(docs[:1] + [('markdown', 'A sentence.')] + docs[1:]))
    assert not show_doc_runs(_nb(docs[:1] + [('code', 'test_eq(a(), 1)')] + docs[1:]))
    assert show_doc_runs(_nb(docs[:1] + [('code', '#| export\ndef d(): pass')] + docs[1:]))
    assert tools_imports(_nb([('code', "import sys\nsys.path.insert(0, '../tools')")]))
    assert tools_imports(_nb([('code', 'from v1_surface import measure')])) and not tools_imports(_nb([('code', 'import os')]))
    assert title(_nb([('markdown', '# basic_train')])) and title(_nb([('markdown', '# basic_train: the Learner')]))
    assert not title(_nb([('markdown', '# basic_train: the Learner and its loop\n> Trained by a short loop.')]))
