"""Write README.md from nbs/index.ipynb with nbconvert's markdown exporter.

nbdev_readme renders the README with Quarto, which these machines cannot install; this script does the same job
from the same notebook: hidden cells and cell directives are dropped, outputs are left out so the README does not
change when the notebook is run. `python tools/make_readme.py --check` exits 1 when README.md is out of date.
"""
import argparse, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'


def readme_text(nb_path: Path = ROOT / 'nbs' / 'index.ipynb') -> str:
    "The README's text for the notebook at `nb_path`."
    nb = nbformat.read(nb_path, as_version=4)
    keep = []
    for cell in nb.cells:
        if cell.cell_type == 'code':
            lines = cell.source.splitlines()
            if any(l.replace(' ', '') in ('#|hide', '#|include:false') for l in lines): continue
            cell.source = '\n'.join(l for l in lines if not l.lstrip().startswith('#|')).strip()
            if not cell.source: continue
        keep.append(cell)
    nb.cells = keep
    body, _ = MarkdownExporter(exclude_output=True).from_notebook_node(nb)
    return HEADER + body.strip() + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true', help='exit 1 if README.md differs from what the notebook gives')
    args = p.parse_args(argv)
    text, readme = readme_text(), ROOT / 'README.md'
    if args.check:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            print('README.md is out of date: run `python tools/make_readme.py`.', file=sys.stderr)
            return 1
        return 0
    readme.write_text(text, encoding='utf-8')
    return 0


if __name__ == '__main__': sys.exit(main())
