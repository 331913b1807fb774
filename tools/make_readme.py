"""Write README.md from nbs/index.ipynb, with the outputs of the executed notebook: results and plots.

    python tools/make_readme.py            # write README.md and its images
    python tools/make_readme.py --check    # exit 1 if README.md or an image is not what the notebook gives

nbdev_readme renders the README with Quarto, which these machines cannot install; this script does the same job
from the same notebook, the way Quarto's `gfm` output does: hidden cells (`#| hide`, `#| include: false`) and
cell directives are dropped, `#| echo: false` shows only the outputs and `#| output: false` only the code.
The outputs are those committed in the notebook (run it first with `python tools/execute_nbs.py index`):
printed lines and values as text blocks, the fit's results table as a markdown table, the progress bars' final
state as text, and each plot as a PNG in `index_files/figure-commonmark/` (where nbdev_readme puts them),
referenced from README.md. Warnings (standard error) are left out. `--check` compares README.md and every image,
byte for byte, and lists stale images too.
"""
import argparse, base64, html, re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
IMAGES = Path('index_files') / 'figure-commonmark'  # relative to the repository root, as README.md links it
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'


def _directives(src: str) -> dict:
    return {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r'^#\|\s*([\w-]+)\s*:?\s*(.*)$', src, re.M)}


def _text_block(text: str) -> str:
    text = text.rstrip('\n')
    fence = '````' if '```' in text else '```'
    return f'{fence}\n{text}\n{fence}'


def html_table_to_markdown(table: str) -> str:
    "An HTML table (one header row, then rows) as a markdown table."
    cell = lambda c: html.unescape(re.sub(r'<[^>]+>', '', c)).strip().replace('|', '\\|')
    rows = [[cell(c) for c in re.findall(r'<t[hd][^>]*>(.*?)</t[hd]>', r, re.S)]
            for r in re.findall(r'<tr[^>]*>(.*?)</tr>', table, re.S)]
    rows = [r for r in rows if r]
    if not rows: return ''
    head, body = rows[0], rows[1:]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join('---' for _ in head) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(r) + ' |' for r in body])


def render_output(o, name: str, images: dict) -> str | None:
    "Markdown for output `o`; a PNG goes into `images` under `name` (a path relative to the repository root)."
    if o.output_type == 'stream': return _text_block(o.text) if o.name == 'stdout' and o.text.strip() else None
    if o.output_type == 'error': return _text_block(f'{o.ename}: {o.evalue}')
    data = o.get('data', {})
    if 'image/png' in data:
        png = data['image/png']
        images[name] = base64.b64decode(png if isinstance(png, str) else ''.join(png))
        return f'![]({name})'
    if 'text/markdown' in data: return data['text/markdown'].strip()
    h = data.get('text/html', '')
    if 'fastbook-metrics' in h: return html_table_to_markdown(h)         # the results table
    if 'fastbook-progress' in h: return _text_block(data.get('text/plain', ''))  # the bars' final state
    if h.strip(): return h.strip()
    if data.get('text/plain', '').strip(): return _text_block(data['text/plain'])
    return None


def readme(nb_path: Path = ROOT / 'nbs' / 'index.ipynb') -> tuple[str, dict]:
    "The README's text for the notebook at `nb_path`, and `{image path: PNG bytes}` for the images it links."
    nb = nbformat.read(nb_path, as_version=4)
    parts, images = [], {}
    for i, cell in enumerate(nb.cells):
        src = cell.source
        if cell.cell_type == 'markdown':
            if src.strip(): parts.append(src.strip())
            continue
        if cell.cell_type != 'code': continue
        d = _directives(src)
        if 'hide' in d or d.get('include') == 'false': continue
        code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith('#|')).strip()
        if code and d.get('echo') != 'false': parts.append(f'```python\n{code}\n```')
        if d.get('output') == 'false': continue
        for j, o in enumerate(cell.get('outputs', [])):
            md = render_output(o, (IMAGES / f'cell-{i}-output-{j}.png').as_posix(), images)
            if md: parts.append(md)
    return HEADER + '\n\n'.join(parts) + '\n', images


def readme_text(nb_path: Path = ROOT / 'nbs' / 'index.ipynb') -> str:
    "The README's text for the notebook at `nb_path`."
    return readme(nb_path)[0]


def differences(text: str, images: dict, root: Path = ROOT) -> list[str]:
    "What differs between the README and images in `root` and those given: one line each."
    res = []
    path = root / 'README.md'
    if not path.exists() or path.read_text(encoding='utf-8') != text: res.append('README.md differs')
    for name, data in images.items():
        p = root / name
        if not p.exists(): res.append(f'{name} is missing')
        elif p.read_bytes() != data: res.append(f'{name} differs')
    folder = root / IMAGES
    if folder.exists():
        res += [f'{p.relative_to(root).as_posix()} is stale (no longer in the notebook)' for p in sorted(folder.glob('*.png'))
                if p.relative_to(root).as_posix() not in images]
    return res


def write(text: str, images: dict, root: Path = ROOT):
    "Write README.md and its images into `root`, removing stale images."
    folder = root / IMAGES
    if folder.exists():
        for p in folder.glob('*.png'):
            if p.relative_to(root).as_posix() not in images: p.unlink()
    for name, data in images.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists() or p.read_bytes() != data: p.write_bytes(data)
    (root / 'README.md').write_text(text, encoding='utf-8')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true', help='exit 1 if README.md or its images differ from the notebook')
    p.add_argument('--nb', type=Path, default=ROOT / 'nbs' / 'index.ipynb', help='the notebook (default nbs/index.ipynb)')
    p.add_argument('--root', type=Path, default=ROOT, help='where README.md and index_files/ are (default: the repository)')
    args = p.parse_args(argv)
    text, images = readme(args.nb)
    if args.check:
        diffs = differences(text, images, args.root)
        if diffs:
            print('README.md is out of date (' + '; '.join(diffs) + '): run `python tools/make_readme.py`.', file=sys.stderr)
            return 1
        return 0
    write(text, images, args.root)
    return 0


if __name__ == '__main__': sys.exit(main())
