"The documentation: every public name documented, and the rendered site checked in a real browser."
import base64, importlib, inspect, json, re, shutil, subprocess, sys
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


def test_every_public_name_is_documented():
    problems = []
    for mod_name, (nb, cells) in notebooks().items():
        if mod_name in ('__main__', 'basics'): continue  # basics only re-exports; __main__ only runs cli.main
        mod = importlib.import_module(f'fastbook_core.{mod_name}')
        code = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
        prose = '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
        shown = {t for c in code for t in re.findall(r'^show_doc\(([\w.]+)', c, re.M)}
        auto = set()  # nbdev adds a show_doc after each definition of an `#| export` cell
        for c in code:
            if re.match(r'#\|\s*export\s*$', c.splitlines()[0] if c else ''):
                auto |= set(re.findall(r'^(?:def|class) (\w+)', c, re.M))
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if not (inspect.getdoc(obj) or '').strip(): problems.append(f'{mod_name}.{name}: no docstring')
                if name not in shown and name not in auto: problems.append(f'{mod_name}.{name}: no show_doc')
            elif f'`{name}`' not in prose: problems.append(f'{mod_name}.{name}: not explained in the prose')
        for c in code:  # methods added with @patch are documented explicitly, as Class.method
            for meth, cls in re.findall(r'^@patch\ndef (\w+)\(\w+: (\w+)', c, re.M):
                if f'{cls}.{meth}' not in shown: problems.append(f'{mod_name}: {cls}.{meth} has no show_doc')
                if not (inspect.getdoc(getattr(getattr(mod, cls, None) or importlib.import_module('fastbook_core.basic_train').__dict__[cls], meth)) or '').strip():
                    problems.append(f'{mod_name}: {cls}.{meth} has no docstring')
    assert not problems, '\n'.join(problems)


CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')


def chromium(*args, profile):
    cmd = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
           '--disable-component-update', '--disable-sync', f'--user-data-dir={profile}', *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    from docs_preview import build
    out = tmp_path_factory.mktemp('site') / 'preview'
    home = build(out, workers=2)
    return out, home


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
    n_images = 0
    for page in pages:
        dom = chromium('--dump-dom', page.as_uri(), profile=tmp_path / 'profile').stdout
        assert '<main class="fb-main">' in dom, f'{page.name} did not load'
        assert 'Traceback (most recent call last)' not in dom, f'{page.name} shows an error'
        for src in re.findall(r'<img [^>]*src="([^"]+)"', dom):
            n_images += 1
            if src.startswith('data:image/png;base64,'):
                data = base64.b64decode(src.split(',', 1)[1])
                assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 1000, f'broken image in {page.name}'
            else: assert (page.parent / src).is_file(), f'{page.name} references missing {src}'
    assert n_images >= 10  # the plots of the examples are there
    for shot, name in ((tmp_path / 'home.png', 'index.html'), (tmp_path / 'basic_train.png', 'basic_train.html')):
        r = chromium('--window-size=1280,1600', f'--screenshot={shot}', (out / name).as_uri(), profile=tmp_path / 'profile')
        assert shot.is_file() and shot.stat().st_size > 20_000, r.stderr[-500:]
    shots = ROOT / '_preview_screenshots'
    shots.mkdir(exist_ok=True)
    for s in ('home.png', 'basic_train.png'): shutil.copy(tmp_path / s, shots / s)


def test_module_pages_show_their_api(site):
    out, _ = site
    for mod_name, (nb, cells) in notebooks().items():
        if mod_name in ('__main__',): continue
        page = out / (mod_name + '.html')
        assert page.is_file(), page
        html = page.read_text()
        headings = {re.sub(r'<.*?>', '', h).replace('¶', '').strip() for h in re.findall(r'<h[234][^>]*>(.*?)</h[234]>', html, re.S)}
        mod = importlib.import_module(f'fastbook_core.{mod_name}')
        if mod_name == 'basics': continue
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert name in headings, f'{page.name} has no heading for {name}'
        titles = [re.sub(r'<.*?>', '', h).replace('¶', '').strip() for h in re.findall(r'<h3[^>]*>(.*?)</h3>', html, re.S)]
        api = [t for t in titles if re.fullmatch(r'[\w.]+', t)]
        assert len(api) == len(set(api)), f'{page.name} documents a name twice: {sorted(t for t in api if api.count(t) > 1)}'
