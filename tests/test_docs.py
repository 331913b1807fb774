"The documentation: every public name documented, and the rendered site checked in a real browser."
import base64, importlib, inspect, json, os, re, shutil, subprocess, sys
from html import unescape as html_unescape
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))


def notebooks():
    "`{module name: (notebook path, cells)}` for every notebook that exports a module."
    res = {}
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        src = '\n'.join(''.join(c['source']) for c in cells)
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', src, re.M)
        if m: res[m.group(1)] = (nb, cells)
    return res


def public_names() -> dict:
    "`{module: [name]}`: every public class, function, method and property nbdev exported (`on_*` events aside)."
    sys.path.insert(0, str(ROOT))
    modidx = importlib.import_module('fastbook_core._modidx')
    res = {}
    for mod, syms in modidx.d['syms'].items():
        for key in syms:
            name = key[len(mod) + 1:]
            parts = name.split('.')
            if any(p.startswith('_') for p in parts) or parts[-1].startswith('on_'): continue
            res.setdefault(mod, []).append(name)
    return res


def module_notebook(mod: str) -> str:
    "The notebook that `mod` (`fastbook_core.x`) is exported from, from the generated file's header."
    path = ROOT / (mod.replace('.', '/') + '.py')
    m = re.search(r'File to edit: (?:\.\./)+nbs/(\S+?\.ipynb)', path.read_text()) if path.exists() else None
    return m.group(1) if m else path.name


def shown_names() -> dict:
    "`{notebook: names}`: the names with a visible `show_doc`, the ones nbdev adds after `#| export` cells included."
    from nbdev.process import NBProcessor
    from nbdev.processors import add_show_docs
    shown = {}
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        proc = NBProcessor(nb, add_show_docs, rm_directives=False)  # nbdev's own rule for the automatic ones
        proc.process()
        names = shown.setdefault(nb.name, set())
        for c in proc.nb.cells:
            if c.cell_type != 'code' or 'hide' in c.directives_ or c.directives_.get('include:') == ['false']: continue
            for target, name in re.findall(r"^show_doc\(([\w.]+)(?:[^\n]*?name\s*=\s*['\"]([\w.]+)['\"])?", c.source, re.M):
                names.add(name or target)
    return shown


def resolve(mod: str, name: str):
    "The object `name` (`Class.method` or `function`) of module `mod`; a property stays a property."
    obj = importlib.import_module(mod)
    for part in name.split('.'):
        static = inspect.getattr_static(obj, part) if inspect.isclass(obj) else None
        obj = static if isinstance(static, property) else getattr(obj, part)
    return obj


def signature_md(obj, name: str) -> str:
    "The signature `show_doc` renders for `obj` (the code block of its markdown)."
    from nbdev.showdoc import show_doc
    md = show_doc(obj, name=name)._repr_markdown_()
    m = re.search(r'```python\n(.*?)```', md, re.S)
    return m.group(1) if m else ''


def undocumented() -> dict:
    "`{notebook: [problem]}` for every public name without a visible `show_doc` on its page, a one-line docstring or a clean signature."
    shown, res = shown_names(), {}
    for mod, names in public_names().items():
        nb = module_notebook(mod)  # nbdev links a name to its module's page: its entry must be there
        for name in names:
            probs = []
            try: obj = resolve(mod, name)
            except AttributeError as e:
                res.setdefault(nb, []).append(f'{name}: listed in _modidx but not found ({e}): run nbdev_export')
                continue
            doc = (inspect.getdoc(obj) or '').strip()
            if not doc: probs.append('no docstring')
            elif '\n' in doc: probs.append('a docstring of more than one line (keep one line; say more in the prose)')
            if name not in shown.get(nb, ()):
                elsewhere = sorted(k for k, v in shown.items() if name in v)
                probs.append(f'its show_doc is in {", ".join(elsewhere)}, but nbdev links `{name}` to this page: move it here'
                             if elsewhere else f'no show_doc (add a cell `show_doc({name})`)')
            sig = signature_md(obj, name)
            if 'NoneType' in sig:
                args = sorted(set(re.findall(r'(\w+):NoneType', sig)))
                probs.append(f'its signature shows NoneType for {", ".join(args)} (annotate: `x: T | None = None`)')
            if re.search(r'\w:\s*(?:functools\.)?partial\b', sig):
                probs.append('its signature shows `partial` as a type (annotate the parameter, e.g. `opt_func: Callable`)')
            for p in probs: res.setdefault(nb, []).append(f'{name}: {p}')
    return res


def format_problems(probs: dict) -> str:
    n = sum(map(len, probs.values()))
    return '\n'.join([f'{n} problems in {len(probs)} notebooks'] +
                     [f'\n{nb}\n' + '\n'.join(f'  {p}' for p in ps) for nb, ps in sorted(probs.items())])


def test_every_public_name_is_documented():
    probs = undocumented()
    assert not probs, format_problems(probs)


def test_module_constants_are_explained():
    problems = []
    for mod_name, (nb, cells) in notebooks().items():
        if mod_name in ('__main__', 'basics'): continue  # basics only re-exports; __main__ only runs cli.main
        mod = importlib.import_module(f'fastbook_core.{mod_name}')
        prose = '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) and f'`{name}`' not in prose:
                problems.append(f'{mod_name}.{name}: not explained in the prose')
    assert not problems, '\n'.join(problems)


CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')


def chromium(*args, profile):
    cmd = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
           '--disable-component-update', '--disable-sync', f'--user-data-dir={profile}', *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_heading_ids_are_quartos():
    from docs_preview import pandoc_id, quarto_headings
    assert pandoc_id('Learner.fit') == 'learner.fit' and pandoc_id('1. The `fit` loop!') == 'the-fit-loop'
    body, toc = quarto_headings('<h2 id="A">Same</h2><h3 id="x">Same<a class="anchor-link" href="#x">¶</a></h3>')
    assert [t[1] for t in toc] == ['same', 'same-1'] and 'href="#same-1"' in body and 'id="x"' not in body


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    from docs_preview import build
    out = tmp_path_factory.mktemp('site') / 'preview'
    home = build(out, workers=2)
    return out, home


def test_no_broken_links(site):
    from docs_preview import broken_links
    out, _ = site
    broken = broken_links(out)
    assert not broken, f'{len(broken)} links land nowhere:\n' + '\n'.join(broken)


def test_nbdev_processes_every_notebook(site):
    out, _ = site
    failed = {p.name: re.findall(r'<pre>(.*?)</pre>', t.split('class="fb-error"', 1)[1], re.S)[0][:600]
              for p in sorted(out.glob('*.html')) if 'class="fb-error"' in (t := p.read_text())}
    assert not failed, ('nbdev cannot process these notebooks for the docs (it runs the cells that export, import or '
                        'call show_doc on their own: a cell that imports must hold only imports):\n'
                        + '\n'.join(f'{k}: {html_unescape(v)}' for k, v in failed.items()))


def test_each_page_has_its_own_browser_title(site):
    "The browser's title is the page's own (nbconvert's default is 'Notebook' on every page), then the site's, as Quarto."
    out, _ = site
    titles = {p.name: html_unescape(re.search(r'<title>(.*?)</title>', p.read_text(), re.S).group(1)) for p in out.glob('*.html')}
    assert not [n for n, t in titles.items() if 'Notebook' in t], titles
    assert len(set(titles.values())) == len(titles), sorted(titles.values())
    assert titles['index.html'] == 'fastbook_core'  # the home page: the site's title alone
    assert all(t.endswith(' – fastbook_core') for n, t in titles.items() if n != 'index.html'), titles
    assert titles['basic_train.html'].startswith('basic_train')


def test_main_page_name_renders(site):
    "`__main__` is the page's name, not a bold 'main' (markdown reads bare double underscores as strong emphasis)."
    out, _ = site
    page = next(p for p in out.glob('*.html') if '__main__' in html_unescape(re.search(r'<title>(.*?)</title>', p.read_text(), re.S).group(1)))
    h1 = re.search(r'<h1 class="title">(.*?)</h1>', page.read_text(), re.S).group(1)
    assert '<code>__main__</code>' in h1 and '<strong>' not in h1, h1


def test_processing_runs_as_nbdev_runs_it():
    "nbdev's processing runs from the repository root, in an interpreter whose sys.path has neither tools/ nor '.'."
    from docs_preview import _nbdev_python
    r = _nbdev_python('import os, sys, json; print(json.dumps([os.getcwd(), sys.path]))')
    cwd, path = json.loads(r.stdout)
    assert Path(cwd) == ROOT
    assert str(ROOT / 'tools') not in path and '' not in path and '.' not in path, path  # PYTHONPATH may hold ROOT
    src = (ROOT / 'tools' / 'docs_preview.py').read_text()
    assert 'sys.path.insert' not in src and 'sys.path.append' not in src
    assert 'from nbdev.serve import proc_nbs' in src  # nbdev's own function, as nbdev_proc_nbs calls it


SHOTS = {'home.png': 'index.html', 'basic_train.png': 'basic_train.html', 'one_cycle.png': 'callbacks.one_cycle.html'}


@pytest.mark.skipif(CHROMIUM is None, reason='no Chromium installed (Debian package `chromium`); .ci/run installs it')
def test_site_in_a_browser(site, tmp_path):
    out, home = site
    pages = sorted(out.glob('*.html'))
    assert home.is_file() and (out / 'basic_train.html').is_file()
    links = set(re.findall(r'<nav class="fb-sidebar">(.*?)</nav>', home.read_text(), re.S)[0].split('href="')[1:])
    linked = {l.split('"')[0] for l in links}
    assert linked == {p.name for p in pages}, linked ^ {p.name for p in pages}   # the sidebar reaches every page
    nav_names = re.findall(r'href="([^"]+)"', re.findall(r'<nav class="fb-sidebar">(.*?)</nav>', home.read_text(), re.S)[0])
    assert nav_names[:3] == ['index.html', 'basic_train.html', 'callback.html']   # the training core first
    assert nav_names.index('train.html') < nav_names.index('basic_data.html')
    n_images, problems = 0, []
    for page in pages:
        dom = chromium('--window-size=1280,1600', '--dump-dom', page.as_uri(), profile=tmp_path / 'profile').stdout
        assert '<main class="fb-main">' in dom, f'{page.name} did not load'
        if 'Traceback (most recent call last)' in dom: problems.append(f'{page.name} shows an error')
        desc = re.findall(r'<p class="description">(.*?)</p>', dom, re.S)
        if desc and '`' in desc[0]: problems.append(f'{page.name}: raw backticks in the subtitle: {desc[0][:80]}')
        clipped = re.search(r'data-clipped="([^"]*)"', dom)
        if clipped is None: problems.append(f'{page.name}: the layout check did not run')
        elif json.loads(html_unescape(clipped.group(1))):
            problems.append(f'{page.name}: code cut or spilling out: {json.loads(html_unescape(clipped.group(1)))[:3]}')
        if re.search(r'<h2 ', dom) and '<nav class="fb-toc" id="TOC">' not in dom:
            problems.append(f'{page.name} has sections but no table of contents')
        for src in re.findall(r'<img [^>]*src="([^"]+)"', dom):
            n_images += 1
            if src.startswith('data:image/png;base64,'):
                data = base64.b64decode(src.split(',', 1)[1])
                if not (data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 1000): problems.append(f'broken image in {page.name}')
            elif not (page.parent / src).is_file(): problems.append(f'{page.name} references missing {src}')
    assert not problems, '\n'.join(problems)
    assert n_images >= 10  # the plots of the examples are there
    shots = ROOT / '_preview_screenshots'
    shots.mkdir(exist_ok=True)
    for shot, name in SHOTS.items():
        r = chromium('--window-size=1280,1600', '--hide-scrollbars', f'--screenshot={tmp_path / shot}', (out / name).as_uri(),
                     profile=tmp_path / 'profile')
        assert (tmp_path / shot).is_file() and (tmp_path / shot).stat().st_size > 20_000, r.stderr[-500:]
        shutil.copy(tmp_path / shot, shots / shot)  # to look at: _preview_screenshots/ (git-ignored)


def test_module_pages_show_their_api(site):
    out, _ = site
    for mod_name, (nb, cells) in notebooks().items():
        if mod_name in ('__main__',): continue
        mod_name = mod_name.removesuffix('.__init__')   # a package's page is named after the package
        page = out / (mod_name + '.html')
        assert page.is_file(), page
        html = page.read_text()
        headings = {re.sub(r'<.*?>', '', h).replace('¶', '').strip() for h in re.findall(r'<h[234][^>]*>(.*?)</h[234]>', html, re.S)}
        mod = importlib.import_module(f'fastbook_core.{mod_name}')
        if mod_name == 'basics': continue
        for name in mod.__all__:
            obj = getattr(mod, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == mod.__name__:  # re-exports: where defined
                # an alias (v1's `mse` for `mean_squared_error`) is documented under its object's own name
                assert name in headings or obj.__name__ in headings, f'{page.name} has no heading for {name}'
        titles = [re.sub(r'<.*?>', '', h).replace('¶', '').strip() for h in re.findall(r'<h3[^>]*>(.*?)</h3>', html, re.S)]
        api = [t for t in titles if re.fullmatch(r'[\w.]+', t)]
        assert len(api) == len(set(api)), f'{page.name} documents a name twice: {sorted(t for t in api if api.count(t) > 1)}'


# ---- the tools that keep notebooks executed and the README current


def _nb(*cells):
    from nbformat.v4 import new_notebook
    return new_notebook(cells=list(cells), metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}})


def test_check_outputs_finds_silent_examples(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
    from check_outputs import check_notebook
    never_run = tmp_path / 'never_run.ipynb'
    nbformat.write(_nb(new_markdown_cell('# t'), new_code_cell('#| export\ndef f(): pass'), new_code_cell('f()\nx = 1\nx')), never_run)
    assert any('no output at all' in p for p in check_notebook(never_run))
    png = base64.b64encode(b'\x89PNG' + b'0' * 900_000).decode()
    cells = [new_code_cell('x = 1\nx', outputs=[new_output('execute_result', {'text/plain': '1'}, execution_count=1)]),
             new_code_cell('learn.fit(1)'),                                    # a silent fit
             new_code_cell('show_doc(f)'),                                     # an API entry not rendered
             new_code_cell('#| hide\nlearn.fit(1)'),                           # hidden: fine
             new_code_cell('test_eq(1, 1)'),                                   # a check with no output: fine
             new_code_cell('y = 2'),
             new_code_cell('bars', outputs=[new_output('display_data', {'text/plain': 'HBox()',
                           'application/vnd.jupyter.widget-view+json': {'model_id': 'x'}})]),
             new_code_cell('plot()', outputs=[new_output('display_data', {'image/png': png})]),
             new_code_cell('1/0', outputs=[new_output('error', ename='ZeroDivisionError', evalue='division by zero', traceback=[])])]
    path = tmp_path / 'partly.ipynb'
    nbformat.write(_nb(*cells), path)
    probs = check_notebook(path)
    text = '\n'.join(probs)
    assert 'cell 1 (\'learn.fit(1)\'): calls fit but shows nothing' in text, text
    assert 'cell 2 (\'show_doc(f)\'): calls show_doc' in text, text
    assert 'cell 6' in text and 'a live widget' in text
    assert 'cell 7' in text and 'KB (cap 500 KB)' in text and 'partly.ipynb: ' in text   # the output and the file
    assert 'cell 8' in text and 'ZeroDivisionError' in text
    assert not any(f'cell {i} (' in text for i in (0, 3, 4, 5)), text
    assert "(text/plain: 'HBox()')" in text


def test_check_outputs_command(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_output
    good = tmp_path / 'good.ipynb'
    nbformat.write(_nb(new_code_cell('1', outputs=[new_output('execute_result', {'text/plain': '1'}, execution_count=1)])), good)
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'check_outputs.py'), str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and '1 notebooks carry their outputs' in r.stdout, r
    bad = tmp_path / 'bad.ipynb'
    nbformat.write(_nb(new_code_cell('1')), bad)
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'check_outputs.py'), str(good), str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and 'bad.ipynb: 1 visible code cells and no output at all' in r.stdout, r


def test_make_readme_carries_outputs(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
    from make_readme import main, readme
    from fastbook_core.progress import html_table
    png = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 8
    table = html_table(['epoch', 'train_loss', 'time'], [['0', '0.500000', '00:01']])
    nb = _nb(new_markdown_cell('# title\n> subtitle'),
             new_code_cell('learn.fit(1)', outputs=[
                 new_output('display_data', {'text/html': '<div class="fastbook-progress"><progress></progress></div>',
                                             'text/plain': 'epoch 100% 1/1'}),
                 new_output('display_data', {'text/html': table, 'text/plain': 'epoch train_loss'}),
                 new_output('stream', name='stdout', text='hello\n'), new_output('stream', name='stderr', text='warning\n')]),
             new_code_cell('#| hide\nsecret()', outputs=[new_output('stream', name='stdout', text='hidden\n')]),
             new_code_cell('plot()', outputs=[new_output('display_data', {'image/png': base64.b64encode(png).decode(),
                                                                            'text/plain': '<Figure>'})]))
    path = tmp_path / 'index.ipynb'
    nbformat.write(nb, path)
    text, images = readme(path)
    assert '```python\nlearn.fit(1)\n```\n\n```\nepoch 100% 1/1\n```' in text
    assert '| epoch | train_loss | time |\n|---|---|---|\n| 0 | 0.500000 | 00:01 |' in text
    assert '```\nhello\n```' in text and 'warning' not in text and 'secret' not in text and 'hidden' not in text
    assert '![](index_files/figure-commonmark/cell-3-output-0.png)' in text and '<Figure>' not in text
    root = tmp_path / 'repo'
    root.mkdir()
    assert main(['--nb', str(path), '--root', str(root), '--check']) == 1        # nothing written yet
    assert main(['--nb', str(path), '--root', str(root)]) == 0
    assert (root / 'index_files/figure-commonmark/cell-3-output-0.png').read_bytes() == png
    assert main(['--nb', str(path), '--root', str(root), '--check']) == 0
    (root / 'index_files/figure-commonmark/cell-3-output-0.png').write_bytes(png[:-1])   # an image changed
    assert main(['--nb', str(path), '--root', str(root), '--check']) == 1
    main(['--nb', str(path), '--root', str(root)])
    (root / 'index_files/figure-commonmark/cell-9-output-0.png').write_bytes(png)         # a stale image
    assert main(['--nb', str(path), '--root', str(root), '--check']) == 1
    main(['--nb', str(path), '--root', str(root)])
    assert not (root / 'index_files/figure-commonmark/cell-9-output-0.png').exists()


def test_execute_nbs_keeps_the_static_display(tmp_path):
    pytest.importorskip('nbclient'); pytest.importorskip('ipykernel')
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell
    from check_outputs import check_notebook
    path = tmp_path / 'fit.ipynb'
    nbformat.write(_nb(new_markdown_cell('# A fit'),
                       new_code_cell('from fastbook_core.test_utils import synth_learner\nimport matplotlib.pyplot as plt'),
                       new_code_cell('learn = synth_learner(silent=False)\nlearn.fit(2)'),
                       new_code_cell('learn.recorder.plot_losses()'),
                       new_code_cell('#| eval: false\nraise RuntimeError("not run")')), path)
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'execute_nbs.py'), str(path), '--timeout', '120'],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stderr[-2000:]
    nb = nbformat.read(path, as_version=4)
    fit = nb.cells[2].outputs
    assert [o.output_type for o in fit] == ['display_data', 'display_data'], fit
    assert '<progress value="2" max="2"' in fit[0].data['text/html'] and '<table' in fit[1].data['text/html']
    assert 'image/png' in nb.cells[3].outputs[0].data                      # inline backend, though CI sets Agg
    assert nb.cells[4].outputs == [] and 'widgets' not in nb.metadata      # not run; no widget state saved
    assert all(c.get('execution_count') is None for c in nb.cells if c.cell_type == 'code')   # nbdev_clean ran
    assert check_notebook(path) == []


if __name__ == '__main__':  # python tests/test_docs.py: the names still to document, by notebook
    print(format_problems(undocumented()))
