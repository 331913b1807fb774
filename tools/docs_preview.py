"""Build a static HTML preview of the documentation site, without Quarto.

    python tools/docs_preview.py [--out _preview] [--workers 2]

nbdev 2 builds the real site with Quarto (`nbdev_docs`), which cannot be installed on our machines. This script
takes the same path as far as it can: nbdev's own processing of the notebooks (`proc_nbs`, what `nbdev_proc_nbs`
runs: show_doc tables, hidden cells removed, links between pages), then runs each processed notebook in a real
Jupyter kernel so that examples have their outputs (plots included), and renders it to HTML with nbconvert, with
the sidebar of `nbs/sidebar.yml`. Open `_preview/index.html` in a browser.
"""
import argparse, html, json, os, re, shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def front_matter(nb) -> dict:
    "The YAML front matter nbdev's processing puts in a notebook's first (raw) cell: title, description, output-file."
    import yaml
    cells = nb.cells if hasattr(nb, 'cells') else json.loads(Path(nb).read_text())['cells']
    first = cells[0] if cells else None
    if first is None or first['cell_type'] != 'raw': return {}
    src = first['source'] if isinstance(first['source'], str) else ''.join(first['source'])
    return yaml.safe_load(src.strip().strip('-')) or {}


def page_name(nb: Path) -> str:
    "The page a processed notebook becomes: its `output-file`, as Quarto would name it."
    return front_matter(nb).get('output-file', nb.stem + '.html')


def sidebar(nbs: Path):
    "`[(sections, notebook file)]` in the order of sidebar.yml, `sections` the nested section titles."
    import yaml
    items = []
    def walk(contents, sections):
        for c in contents:
            if isinstance(c, str): items.append((sections, c))
            else: walk(c.get('contents', []), sections + (c['section'],))
    walk(yaml.safe_load((nbs / 'sidebar.yml').read_text())['website']['sidebar']['contents'], ())
    return items


def execute(src: str, dst: str) -> str:
    "Run notebook `src` in a kernel (cwd: its folder) and write it, with its outputs, to `dst`."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:  # cells marked `eval: false` are shown, not run
        if cell.cell_type == 'code' and re.search(r'^#\|\s*eval:\s*false', cell.source, re.M):
            cell.metadata['skip'] = True
    skipped = {i: c.source for i, c in enumerate(nb.cells) if c.metadata.get('skip')}
    for i in skipped: nb.cells[i].source = ''
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(Path(src).parent)}},
                   store_widget_state=False).execute()
    for i, source in skipped.items(): nb.cells[i].source = source
    nbformat.write(nb, dst)
    return dst


def render(nb_path: Path, nav: str, site_url: str) -> str:
    "The HTML page of executed notebook `nb_path`."
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(nb_path, as_version=4)
    meta = front_matter(nb)
    title, desc = meta.get('title'), meta.get('description')
    cells = []
    for cell in nb.cells[1:] if meta else nb.cells:
        if cell.cell_type == 'code':
            lines = cell.source.splitlines()
            opts = {l.split(':')[0].strip('#| ').strip(): l.split(':', 1)[-1].strip() for l in lines if l.startswith('#|')}
            cell.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            if opts.get('echo') == 'false' or not cell.source: cell.metadata['tags'] = ['hide-input']
            for o in cell.get('outputs', []):
                data = o.get('data', {})
                # widget views need a JavaScript widget manager from the network: show their text instead
                data.pop('application/vnd.jupyter.widget-view+json', None)
                # Quarto's link attributes ({target=...}) mean nothing to nbconvert's markdown
                if 'text/markdown' in data: data['text/markdown'] = re.sub(r'\{target="_blank"[^}]*\}', '', data['text/markdown'])
        cells.append(cell)
    nb.cells = cells
    from traitlets.config import Config
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'hide-input'}
    c.HTMLExporter.preprocessors = ['nbconvert.preprocessors.TagRemovePreprocessor']
    exp = HTMLExporter(config=c, template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exp.from_notebook_node(nb)
    body = body.replace(site_url, '')  # links between pages become relative
    head = f'<h1 class="title">{html.escape(title or nb_path.stem)}</h1>'
    if desc: head += f'<p class="description">{html.escape(desc)}</p>'
    page = (f'<div class="fb-layout"><nav class="fb-sidebar">{nav}</nav><main class="fb-main">{head}')
    body = re.sub(r'<body([^>]*)>', lambda m: f'<body{m.group(1)}>' + page, body, count=1)
    body = body.replace('</body>', '</main></div></body>', 1)
    style = ('<style>.fb-layout{display:flex;align-items:flex-start}.fb-sidebar{width:260px;flex:none;position:sticky;'
             'top:0;max-height:100vh;overflow:auto;padding:1rem;font:14px sans-serif;border-right:1px solid #ddd}'
             '.fb-sidebar a{display:block;padding:2px 0;text-decoration:none}.fb-sidebar .sec{font-weight:bold;'
             'margin-top:.8rem}.fb-main{flex:1;min-width:0;padding:0 1.5rem}.fb-main h1.title{margin-top:1rem}'
             '.description{font-style:italic;opacity:.7;font-size:120%}</style>')
    return body.replace('</head>', style + '</head>', 1)


def build(out: Path, workers: int = 2) -> Path:
    "Build the preview into `out`; return the path of its home page."
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from nbdev.serve import proc_nbs
    from nbdev.config import get_config
    cfg = get_config()
    site_url = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/'
    if out.exists(): shutil.rmtree(out)
    src = out / '_nbs'
    shutil.copytree(ROOT / 'nbs', src, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc', 'models', '*.csv'))
    env_before = os.environ.get('MPLBACKEND')
    os.environ.pop('MPLBACKEND', None)  # the kernel's inline backend turns figures into images
    try:
        with ProcessPoolExecutor(workers) as ex:
            nbs = sorted(src.glob('*.ipynb'))
            list(ex.map(execute, [str(p) for p in nbs], [str(p) for p in nbs]))
    finally:
        if env_before is not None: os.environ['MPLBACKEND'] = env_before
    proc = proc_nbs(str(src), n_workers=workers, force=True)  # nbdev's processing keeps the outputs
    nbs = sorted(proc.glob('*.ipynb'))
    names = {p.name: page_name(p) for p in nbs}
    titles = {p.name: front_matter(p).get('title', p.stem) for p in nbs}
    nav, seen = [], set()
    for secs, f in sidebar(ROOT / 'nbs'):
        if f not in names: continue
        for depth, sec in enumerate(secs):  # a section's heading once, where it starts; nested ones indented
            if secs[:depth + 1] not in seen:
                seen.add(secs[:depth + 1])
                nav.append(f'<div class="sec" style="margin-left:{depth}rem">{html.escape(sec)}</div>')
        nav.append(f'<a href="{names[f]}" style="margin-left:{max(len(secs) - 1, 0)}rem">{html.escape(titles[f])}</a>')
    nav = ''.join(nav)
    for p in nbs:
        (out / names[p.name]).write_text(render(p, nav, site_url), encoding='utf-8')
    shutil.rmtree(src)
    return out / 'index.html'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', type=Path, default=ROOT / '_preview')
    p.add_argument('--workers', type=int, default=2)
    args = p.parse_args(argv)
    print(build(args.out.resolve(), args.workers))


if __name__ == '__main__': main()
