"""Execute notebooks in a real Jupyter kernel and write their outputs back, so that they are committed executed.

    python tools/execute_nbs.py                          # every notebook in nbs/
    python tools/execute_nbs.py nbs/01_progress.ipynb    # the ones named (paths or names, `01_progress` works)
    python tools/execute_nbs.py --timeout 300 --workers 2 06c_callbacks.one_cycle

Each notebook runs top to bottom in a fresh `python3` kernel (nbclient), as a reader's Jupyter would run it:
the kernel's working directory is nbs/, progress bars choose their widget view (and leave a static copy when they
end), matplotlib uses the inline backend so plots are PNGs, and hash seeds are fixed. Cells marked
`#| eval: false` are not run and keep the outputs they had. A notebook that raises, or runs past `--timeout`
seconds, is reported and left as it was. The notebooks written are then cleaned with `nbdev_clean` (volatile
metadata and execution counts go, outputs stay). Widget state is not saved: a saved notebook must read without a
kernel and its widget JavaScript (tools/check_outputs.py fails on any live widget left in the outputs).
"""
import argparse, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
_EVAL_FALSE = re.compile(r'^#\|\s*eval:\s*false\s*$', re.M)
KERNEL_ENV = {
    'MPLBACKEND': 'module://matplotlib_inline.backend_inline',  # plots as PNGs in the outputs, whatever CI sets
    'PYTHONHASHSEED': '0',
    'FASTBOOK_PROGRESS': 'auto',  # widgets in the kernel, as in a reader's Jupyter
    'PYDEVD_DISABLE_FILE_VALIDATION': '1',  # no debugger warning in the first cell's output
}


def find_notebooks(names: list[str] | None = None) -> list[Path]:
    "The notebooks to run: all of nbs/*.ipynb, or those `names` give (paths, file names or stems)."
    if not names: return sorted(NBS.glob('*.ipynb'))
    res = []
    for n in names:
        cands = [Path(n), NBS / n, NBS / f'{n}.ipynb']
        p = next((c for c in cands if c.is_file()), None)
        if p is None: raise SystemExit(f'execute_nbs: no notebook {n!r} (looked for {", ".join(map(str, cands))}).')
        res.append(p.resolve())
    return res


def execute(path: Path, timeout: float = 600.) -> float:
    "Run notebook `path` in a fresh kernel (cwd: its folder, nbs/) and write it back with its outputs; return the seconds taken."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError
    os.environ.update(KERNEL_ENV)  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    skipped = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'code' and _EVAL_FALSE.search(cell.source):
            skipped[i] = (cell.source, cell.get('outputs', []))
            cell.source = ''
    # store_widget_state=True only because nbclient's Output-widget capture needs it (KeyError otherwise); the
    # state is dropped below: a saved notebook must not need widgets
    deadline = time.monotonic() + timeout  # the whole notebook under one deadline: each cell gets what is left
    client = NotebookClient(nb, kernel_name='python3', allow_errors=False, store_widget_state=True,
                            record_timing=False, timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                            resources={'metadata': {'path': str(path.parent)}})  # nbs/ for our notebooks
    start = time.perf_counter()
    try: client.execute()
    except CellTimeoutError as e:
        e.add_note(f'{path.name} ran past {timeout:.0f} s: make its examples smaller, or pass a larger --timeout.')
        raise
    for i, (source, outputs) in skipped.items():
        nb.cells[i].source, nb.cells[i].outputs = source, outputs
    nb.metadata.pop('widgets', None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def clean(paths: list[Path]):
    "Run `nbdev_clean` on `paths`: the same cleaning as CI checks."
    exe = shutil.which('nbdev_clean', path=str(Path(sys.executable).parent)) or shutil.which('nbdev_clean')
    if exe is None: raise SystemExit('execute_nbs: nbdev_clean not found: pip install -e ".[dev]".')
    for p in paths: subprocess.run([exe, '--fname', str(p)], check=True, cwd=ROOT)


def _run_one(path: str, timeout: float):
    try: return path, execute(Path(path), timeout), None
    except Exception as e:  # reported with the others; the notebook is left as it was
        return path, 0., f'{type(e).__name__}: {e}' + ''.join(f'\n  {n}' for n in getattr(e, '__notes__', []))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('notebooks', nargs='*', help='notebooks to run (default: every notebook in nbs/)')
    p.add_argument('--timeout', type=float, default=600., help='seconds each notebook may run (default 600)')
    p.add_argument('--workers', type=int, default=1, help='notebooks run at once (default 1)')
    args = p.parse_args(argv)
    nbs = find_notebooks(args.notebooks)
    failed, done = [], []
    with ProcessPoolExecutor(max(1, args.workers)) as ex:
        for path, secs, err in ex.map(_run_one, [str(n) for n in nbs], [args.timeout] * len(nbs)):
            name = Path(path).name
            if err: failed.append(name); print(f'FAILED  {name}: {err}', file=sys.stderr)
            else: done.append(Path(path)); print(f'ok      {name} ({secs:.1f} s)')
    if done: clean(done)
    if failed:
        print(f'execute_nbs: {len(failed)} notebook(s) failed and were left as they were: {", ".join(failed)}',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__': sys.exit(main())
