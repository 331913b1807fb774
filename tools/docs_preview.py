"""Build a static HTML preview of the documentation site, without Quarto.

    python tools/docs_preview.py [--out _preview] [--workers 2] [--execute missing|all|none]

nbdev 2 builds the real site with Quarto (`nbdev_docs`), which cannot be installed on our machines. This script
takes the same path as far as it can: nbdev's own processing of the notebooks (`proc_nbs`, what `nbdev_proc_nbs`
runs: show_doc tables, hidden cells removed, links between pages), then renders each processed notebook to HTML
with nbconvert, with the sidebar of `nbs/sidebar.yml` and a table of contents per page. Like Quarto (see
`nbs/_quarto.yml`), it shows the outputs committed in the notebooks; a notebook committed without outputs is run
in a real Jupyter kernel first (`--execute missing`, the default; `all` runs every notebook, `none` none), so the
preview still shows its examples, and `tools/check_outputs.py` says it should be committed executed.

What Quarto does and nbconvert does not is done here: headings get Quarto's (pandoc's) identifiers, so that
nbdev's links (`basic_train.html#learner.fit`) land; the page's subtitle is rendered as markdown; code wraps instead
of being cut. `broken_links(out)` lists the links between pages that land nowhere. Open `_preview/index.html`.
"""
import argparse, html, json, os, re, shutil, subprocess, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import unquote

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


def has_outputs(path) -> bool:
    "True if any code cell of the notebook at `path` has an output (it was committed executed)."
    cells = json.loads(Path(path).read_text(encoding='utf-8'))['cells']
    return any(c.get('outputs') for c in cells if c['cell_type'] == 'code')


def execute(src: str, dst: str) -> str:
    "Run notebook `src` in a kernel (cwd: its folder) and write it, with its outputs, to `dst`; errors are shown."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(src, as_version=4)
    skipped = {}
    for i, cell in enumerate(nb.cells):  # cells marked `eval: false` are shown, not run
        if cell.cell_type == 'code' and re.search(r'^#\|\s*eval:\s*false', cell.source, re.M):
            skipped[i], cell.source = cell.source, ''
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(Path(src).parent)}},
                   store_widget_state=True, allow_errors=True).execute()  # True: nbclient's Output widgets need it
    nb.metadata.pop('widgets', None)
    for i, source in skipped.items(): nb.cells[i].source = source
    nbformat.write(nb, dst)
    return dst


# nbdev's processing, run as `nbdev_proc_nbs` runs it: a fresh interpreter in the repository root, whose sys.path has
# neither tools/ nor the current folder (`-P`), calling nbdev's `proc_nbs`, which processes every notebook in spawned
# workers (`nbdev.serve_drv.main`: show_doc cells run, hidden cells dropped, links added) into the repository's
# `_proc/`. What `nbdev_proc_nbs` does before it (`_pre_docs`) is left out: installing Quarto, rewriting
# nbs/nbdev.yml and the sidebar (custom here), and rebuilding `_modidx.py` (CI checks that nbdev_export changes
# nothing, so the committed one is current).
_PROC_NBS = """import sys
from pathlib import Path
from nbdev.serve import proc_nbs
print(proc_nbs(sys.argv[1], n_workers=int(sys.argv[2]), force=True))
"""

# One notebook, through the same function nbdev's workers run: what a failing notebook's error is.
_PROC_ONE = """import sys
from pathlib import Path
import nbdev.serve_drv
from nbdev.processors import FilterDefaults
nbdev.serve_drv.main((Path(sys.argv[1]), Path(sys.argv[2]), FilterDefaults))
"""


def _nbdev_python(code: str, *args) -> subprocess.CompletedProcess:
    "Run `code` as nbdev's commands run: a fresh interpreter, in the repository root, with no tools/ on sys.path."
    return subprocess.run([sys.executable, '-P', '-c', code, *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def _last_error(stderr: str) -> str:
    "The exception line at the end of a traceback (or the last line there is)."
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    errs = [l for l in lines if re.match(r'^[\w.]+(Error|Exception|Interrupt|Exit)\b', l)]
    return (errs or lines or ['no output'])[-1].strip()


def process(src: Path, dst: Path, workers: int = 2) -> dict:
    """Process the notebooks in `src` into `dst` with nbdev's `proc_nbs`, as `nbdev_proc_nbs` runs it from the
    repository root; `{name: error}` for each notebook nbdev could not process (a Quarto build would stop there),
    which is then processed without running its show_doc cells, so that its page still exists."""
    from execnb.nbio import read_nb, write_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import FilterDefaults
    cache = ROOT / '_proc'  # where proc_nbs writes: `_proc` beside settings.ini
    r = _nbdev_python(_PROC_NBS, src, workers)
    errors = {}
    for nb in sorted(src.glob('*.ipynb')):
        if (cache / nb.name).is_file(): continue
        one = _nbdev_python(_PROC_ONE, nb, cache / nb.name)  # the error of this notebook alone
        if one.returncode == 0: continue  # it processes alone: the batch's failure is reported below
        errors[nb.name] = _last_error(one.stderr)
        page = read_nb(nb)  # the page without its API entries
        NBProcessor(nb=page, procs=[p for p in FilterDefaults().procs() if p.__name__ != 'exec_show_docs']).process()
        write_nb(page, cache / nb.name)
    if r.returncode and not errors:
        raise RuntimeError(f"nbdev's proc_nbs failed, though each notebook processes alone:\n{r.stderr[-3000:]}")
    if dst.exists(): shutil.rmtree(dst)
    shutil.move(str(cache), str(dst))
    return errors


def pandoc_id(text: str) -> str:
    "The identifier pandoc (so Quarto) gives a heading: lower case, punctuation but `_-.` dropped, spaces as `-`."
    s = re.sub(r'[^\w\s.-]', '', html.unescape(text).strip())
    s = re.sub(r'\s+', '-', s).lower()
    return re.sub(r'^[^a-z]+', '', s) or 'section'


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r'<[^>]+>', '', fragment)).strip()


def quarto_headings(body: str) -> tuple[str, list]:
    "`body` with Quarto's heading ids (and anchor links), and `[(level, id, text)]` of its headings."
    seen, toc = {}, []
    def fix(m):
        level, attrs, inner = m.group(1), m.group(2), m.group(3)
        inner = re.sub(r'<a class="anchor-link"[^>]*>.*?</a>', '', inner, flags=re.S)
        text = _text(inner)
        base = pandoc_id(text)
        n = seen.get(base, 0); seen[base] = n + 1
        ident = base if n == 0 else f'{base}-{n}'
        attrs = re.sub(r'\s*id="[^"]*"', '', attrs)
        toc.append((int(level), ident, text))
        return (f'<h{level} id="{ident}"{attrs}>{inner}<a class="anchor-link" href="#{ident}" '
                f'aria-label="link to this heading">¶</a></h{level}>')
    body = re.sub(r'<h([1-6])([^>]*)>(.*?)</h\1>', fix, body, flags=re.S)
    return body, toc


def inline_markdown(text: str) -> str:
    "`text` (a title or subtitle) rendered as inline markdown, as Quarto renders the title block."
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    out = markdown2html_mistune(text).strip()
    return re.sub(r'^<p>(.*)</p>$', r'\1', out, flags=re.S)


def toc_html(headings: list) -> str:
    "The page's table of contents: its H2s and H3s, as Quarto's `toc: true` shows them."
    items = [f'<a class="toc-l{lvl}" href="#{ident}">{html.escape(text)}</a>' for lvl, ident, text in headings
             if lvl in (2, 3)]
    if not items: return ''
    return f'<nav class="fb-toc" id="TOC"><div class="toc-title">On this page</div>{"".join(items)}</nav>'


STYLE = """<style>
.fb-layout{display:flex;align-items:flex-start}
.fb-sidebar{width:250px;flex:none;position:sticky;top:0;max-height:100vh;overflow:auto;padding:1rem;
  font:14px sans-serif;border-right:1px solid #ddd;box-sizing:border-box}
.fb-sidebar a{display:block;padding:2px 0;text-decoration:none}
.fb-sidebar .sec{font-weight:bold;margin-top:.8rem}
.fb-main{flex:1;min-width:0;padding:0 1.5rem}
.fb-main h1.title{margin-top:1rem}
.fb-toc{width:220px;flex:none;position:sticky;top:0;max-height:100vh;overflow:auto;padding:1rem .8rem;
  font:13px sans-serif;border-left:1px solid #ddd;box-sizing:border-box}
.fb-toc .toc-title{font-weight:bold;margin-bottom:.4rem}
.fb-toc a{display:block;padding:2px 0;text-decoration:none;overflow-wrap:anywhere}
.fb-toc a.toc-l3{padding-left:.8rem;font-size:12px}
.description{font-style:italic;opacity:.75;font-size:120%}
.description code{font-style:normal}
.fb-error{border:2px solid #c00;padding:.5rem;margin:1rem 0;color:#900}
/* code is never cut: long lines wrap (between words where they can), as Quarto's `code-overflow: wrap` does */
.fb-main pre{white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere}
.fb-main .jp-OutputArea-output pre{white-space:pre-wrap;word-break:normal}
.fb-main .jp-RenderedMarkdown pre{background:#f5f5f5;padding:.5em .7em;margin:.6em 0 1em}
.fb-main .jp-InputArea-editor,.fb-main .jp-OutputArea-output{overflow-x:auto}
.fb-main table{display:block;max-width:100%;overflow-x:auto}
.fb-main img{max-width:100%;height:auto}
</style>"""

# Run by Chromium in the docs test: marks code that is cut (hidden overflow) or spills out of the content column.
CHECK_SCRIPT = """<script>(function(){
var main=document.querySelector('.fb-main'); if(!main) return; var right=main.getBoundingClientRect().right, bad=[];
function scrolls(el){for(var a=el.parentElement;a&&a!==main;a=a.parentElement){
  var o=getComputedStyle(a).overflowX; if(o=='auto'||o=='scroll') return true;} return false;}
main.querySelectorAll('pre, code, .highlight, .jp-OutputArea-output, .jp-InputArea-editor').forEach(function(el){
  var cs=getComputedStyle(el), ox=cs.overflowX, r=el.getBoundingClientRect();
  var cut=(ox=='hidden'||ox=='clip')&&el.scrollWidth>el.clientWidth+1;
  var spills=!scrolls(el)&&((ox=='visible'&&el.clientWidth>0&&el.scrollWidth>el.clientWidth+1)||(r.width>0&&r.right>right+1));
  if(cut||spills) bad.push((cut?'cut: ':'spills: ')+el.textContent.trim().slice(0,60));
});
document.documentElement.setAttribute('data-clipped', JSON.stringify(bad));
})();</script>"""


def render(nb_path: Path, nav: str, site_url: str, error: str | None = None, site_title: str = '') -> str:
    "The HTML page of processed notebook `nb_path`; `error`: why nbdev could not process it, shown on the page."
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
                # a widget left in a notebook needs a JavaScript widget manager from the network: show its text
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
    head = f'<h1 class="title">{inline_markdown(title or nb_path.stem)}</h1>'
    if desc: head += f'<p class="description">{inline_markdown(desc)}</p>'
    if error: head += (f'<div class="fb-error"><b>nbdev could not process this notebook</b>, and a Quarto build would stop '
                       f'here. To render show_doc, nbdev runs only the cells that export, import or call show_doc, '
                       f'without the cells between: a cell that imports must hold only imports (and what runs without '
                       f'the rest of the notebook). <pre>{html.escape(error)}</pre></div>')
    # the browser's title, as Quarto writes it for a website page: the page's own title, then the site's
    page_title = _text(inline_markdown(title or nb_path.stem))
    if site_title and page_title != site_title: page_title += f' – {site_title}'
    body = re.sub(r'<title>.*?</title>', lambda m: f'<title>{html.escape(page_title)}</title>', body, count=1, flags=re.S)
    body = re.sub(r'<body([^>]*)>', lambda m: f'<body{m.group(1)}>\x00HEAD\x00', body, count=1)
    body, headings = quarto_headings(body)
    page = f'<div class="fb-layout"><nav class="fb-sidebar">{nav}</nav><main class="fb-main">{head}'
    body = body.replace('\x00HEAD\x00', page, 1)
    body = body.replace('</body>', f'</main>{toc_html(headings)}</div>{CHECK_SCRIPT}</body>', 1)
    return body.replace('</head>', STYLE + '</head>', 1)


def broken_links(out: Path) -> list[str]:
    "Links between the pages in `out` that land nowhere: `page: href (why)`, one line each."
    pages = {p.name: p.read_text(encoding='utf-8') for p in sorted(out.glob('*.html'))}
    ids = {n: set(re.findall(r'\sid="([^"]+)"', t)) | set(re.findall(r'<a [^>]*name="([^"]+)"', t)) for n, t in pages.items()}
    res = []
    for name, text in pages.items():
        for href in re.findall(r'<a [^>]*href="([^"]*)"', text):
            href = html.unescape(href)
            if re.match(r'[a-zA-Z][\w+.-]*:', href) or href.startswith('//'): continue  # another site, mailto:
            page, _, frag = href.partition('#')
            if page and not page.endswith('.html'): continue  # an image or a file, not a page
            target = page or name
            if target not in pages: res.append(f'{name}: {href} (no page {target})')
            elif frag and unquote(frag) not in ids[target]: res.append(f'{name}: {href} ({target} has no #{unquote(frag)})')
    return res


def build(out: Path, workers: int = 2, execute_mode: str = 'missing') -> Path:
    "Build the preview into `out`; return the path of its home page."
    if execute_mode not in ('missing', 'all', 'none'):
        raise ValueError(f"execute_mode={execute_mode!r}: use 'missing', 'all' or 'none'.")
    from nbdev.config import get_config
    cfg = get_config(path=ROOT)
    site_url = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/'
    if out.exists(): shutil.rmtree(out)
    src = out / '_nbs'
    shutil.copytree(ROOT / 'nbs', src, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc', 'models', '*.csv'))
    nbs = sorted(src.glob('*.ipynb'))
    to_run = [str(p) for p in nbs if execute_mode == 'all' or (execute_mode == 'missing' and not has_outputs(p))]
    if to_run:
        env_before = {k: os.environ.get(k) for k in ('MPLBACKEND', 'FASTBOOK_PROGRESS')}
        os.environ['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'  # figures as images
        os.environ.pop('FASTBOOK_PROGRESS', None)
        try:
            with ProcessPoolExecutor(workers) as ex: list(ex.map(execute, to_run, to_run))
        finally:
            for k, v in env_before.items():
                if v is None: os.environ.pop(k, None)
                else: os.environ[k] = v
    proc = out / '_proc'
    failed = process(src, proc, workers)
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
        nav.append(f'<a href="{names[f]}" style="margin-left:{max(len(secs) - 1, 0)}rem">{inline_markdown(titles[f])}</a>')
    nav = ''.join(nav)
    for p in nbs:
        (out / names[p.name]).write_text(render(p, nav, site_url, failed.get(p.name), cfg.title), encoding='utf-8')
    shutil.rmtree(src); shutil.rmtree(proc)
    for name, err in failed.items(): print(f'docs_preview: nbdev could not process {name}: {err}', file=sys.stderr)
    return out / 'index.html'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', type=Path, default=ROOT / '_preview')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--execute', choices=('missing', 'all', 'none'), default='missing',
                   help='which notebooks to run first: those without outputs (default), all, or none')
    args = p.parse_args(argv)
    home = build(args.out.resolve(), args.workers, args.execute)
    broken = broken_links(home.parent)
    print(home)
    if broken: print(f'{len(broken)} broken links:\n' + '\n'.join(broken), file=sys.stderr)


if __name__ == '__main__': main()
