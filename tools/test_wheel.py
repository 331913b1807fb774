"""Test fastbook_core as users get it: the built sdist and wheel, installed where fastai and Lightning live.

    python tools/test_wheel.py      # a few minutes, most of them installing torch into the fresh environment

From a copy of the repository (its tracked and untracked-but-not-ignored files), `python -m build` makes the sdist,
then the wheel from the sdist, which proves the sdist builds. The wheel is installed into a fresh virtual
environment under /tmp with torch==2.13.0 (the CPU wheel: a bare torch requirement would pull a CUDA build of
several GB, so torch goes first), the newest fastcore (fastai 2.8 needs fastcore>=2.2), Lightning, and no
development tools; `pip check` must be clean there. Then, from a blank folder outside the repository, it does what
a new user does: imports the package, runs the main job without scikit-learn (it must name the extra to install),
installs the `datasets` extra, and runs `python -m fastbook_core` and the `fastbook_train` console script.

Needs `build` in the interpreter that runs it (the dev extra has it). Nothing in the repository or its virtual
environment changes; the folder under /tmp is removed at the end (kept with --keep).
Environment: FASTBOOK_WHEEL_WITH_FASTAI=1 also installs fastai 2.8 itself (a few minutes more; it brings scikit-learn,
so the check of the message without scikit-learn is skipped). pip check is clean with it, but `import fastai` fails
with the CPU torch: PyPI's torchvision is built for the CUDA torch of the same version.
"""
import argparse, os, shutil, subprocess, sys, tarfile, tempfile, time, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = 'fastbook_core'
TORCH = 'torch==2.13.0'
CACHES = {'__pycache__', '.mypy_cache', '.pytest_cache', '.ipynb_checkpoints'}
START = time.time()


def say(msg: str): print(f'test_wheel [{time.time() - START:5.0f}s] {msg}', flush=True)


class Failed(Exception): "A check of the built package that did not hold."


def check(cond, msg: str):
    if not cond: raise Failed(msg)


def sh(*cmd, cwd=None, env=None, ok=(0,), timeout=900) -> subprocess.CompletedProcess:
    "Run `cmd`; its exit code must be in `ok`, else its output is shown."
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode not in ok:
        raise Failed(f'{" ".join(map(str, cmd))} exited with {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}')
    return r


def repo_files() -> list[str]:
    "The repository's files as a clone has them, relative to ROOT: tracked, plus untracked files git does not ignore."
    if (ROOT / '.git').exists():
        out = sh('git', '-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard').stdout
        files = [f for f in out.split('\0') if f]
    else: files = [str(p.relative_to(ROOT)) for p in ROOT.rglob('*') if p.is_file()]
    return sorted(f for f in set(files) if (ROOT / f).is_file() and not CACHES & set(Path(f).parts) and not f.endswith('.pyc'))


def build(src: Path, dist: Path) -> tuple[Path, Path]:
    "The sdist, and the wheel built from it (build's default), as `python -m build` makes them."
    r = subprocess.run([sys.executable, '-m', 'build', '--version'], capture_output=True, text=True)
    check(r.returncode == 0, f'{sys.executable} has no `build`: pip install build (the dev extra has it)')
    sh(sys.executable, '-m', 'build', '--outdir', dist, src)
    sdists, wheels = sorted(dist.glob('*.tar.gz')), sorted(dist.glob('*.whl'))
    check(len(sdists) == 1 and len(wheels) == 1, f'expected one sdist and one wheel, found {sdists + wheels}')
    return sdists[0], wheels[0]


def check_contents(sdist: Path, wheel: Path, pkg_files: list[str]):
    "Every file of the package is in both; the sdist also has what setup.py reads; the wheel's metadata tells the truth."
    with tarfile.open(sdist) as t: in_sdist = {n.split('/', 1)[1] for n in t.getnames() if '/' in n}
    missing = [f for f in ['setup.py', 'settings.ini', 'README.md', *pkg_files] if f not in in_sdist]
    check(not missing, f'the sdist lacks {missing}')
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n.split('/')[0] for n in names if n.endswith('.dist-info/METADATA'))
        meta = z.read(f'{info}/METADATA').decode()
        entry_points = z.read(f'{info}/entry_points.txt').decode()
    in_wheel = {n for n in names if not n.startswith(info + '/')}
    check(not set(pkg_files) - in_wheel, f'the wheel lacks {sorted(set(pkg_files) - in_wheel)}')
    check(not in_wheel - set(pkg_files), f'the wheel has files that the repository lacks: {sorted(in_wheel - set(pkg_files))}')
    subpackages = sorted({str(Path(f).parent) for f in pkg_files if f.endswith('__init__.py')})
    reqs = [l.split(':', 1)[1].strip() for l in meta.splitlines() if l.startswith('Requires-Dist:') and 'extra ==' not in l]
    fastcore = [r for r in reqs if r.startswith('fastcore')]
    check(fastcore and '<' not in fastcore[0], f'the runtime requirement on fastcore must not be capped: {fastcore}')
    check(not [r for r in reqs if r.split('<')[0].split('>')[0].split('=')[0].strip() in ('nbdev', 'execnb', 'ghapi', 'pytest')],
          f'development tools among the runtime requirements: {reqs}')
    check('fastbook_train = fastbook_core.cli:main' in entry_points, f'no fastbook_train console script:\n{entry_points}')
    say(f'contents ok: {len(pkg_files)} package files ({", ".join(subpackages)}) in the sdist and the wheel; '
        f'runtime requirements: {" ".join(reqs)}')


def user_env(venv: Path) -> dict:
    "The environment of a user of `venv`: its bin first, no PYTHONPATH, nothing from the repository."
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'PYTHONHOME', 'FASTBOOK_DEBUG')}
    return {**env, 'PATH': f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}', 'VIRTUAL_ENV': str(venv),
            'PYTHONNOUSERSITE': '1', 'MPLBACKEND': 'Agg', 'PIP_DISABLE_PIP_VERSION_CHECK': '1'}


def version(py: Path, dist: str, env: dict) -> str | None:
    r = subprocess.run([py, '-c', f'import importlib.metadata as m; print(m.version({dist!r}))'], capture_output=True,
                       text=True, env=env)
    return r.stdout.strip() if r.returncode == 0 else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--keep', action='store_true', help='keep the folder under /tmp (the venv, the builds, the runs)')
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix='fastbook-wheel-'))
    try: run(work)
    except Failed as e:
        print(f'test_wheel: FAILED: {e}', file=sys.stderr)
        print(f'test_wheel: left {work} for a look', file=sys.stderr)
        sys.exit(1)
    if not args.keep: shutil.rmtree(work, ignore_errors=True)
    else: say(f'kept {work}')


def run(work: Path):
    src, dist, venv, user = work / 'src', work / 'dist', work / 'venv', work / 'user'
    files = repo_files()
    pkg_files = [f for f in files if f.startswith(PKG + '/')]
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    say(f'copied {len(files)} repository files to {src}; building')
    sdist, wheel = build(src, dist)
    say(f'built {sdist.name} and, from it, {wheel.name}')
    check_contents(sdist, wheel, pkg_files)

    # A fresh environment as a fastai or Lightning user has it, plus the wheel: torch first, pinned to the CPU wheel.
    sh(sys.executable, '-m', 'venv', venv)
    # --no-compile: the .pyc files are written on first import instead (compiling torch's sources takes a minute)
    env, py, pip = user_env(venv), venv / 'bin' / 'python', [venv / 'bin' / 'python', '-m', 'pip', 'install', '-q', '--no-compile']
    sh(*pip, TORCH, env=env)
    say(f'venv {venv} with {TORCH}; installing the wheel, fastcore>=2.2 and lightning')
    sh(*pip, wheel, 'fastcore>=2.2', 'lightning', TORCH, env=env)
    with_fastai = os.environ.get('FASTBOOK_WHEEL_WITH_FASTAI') == '1'
    if with_fastai:
        say('installing fastai too (FASTBOOK_WHEEL_WITH_FASTAI=1; it brings scikit-learn)')
        sh(*pip, 'fastai', TORCH, env=env)
    fastcore = version(py, 'fastcore', env)
    check(fastcore and tuple(map(int, fastcore.split('.')[:2])) >= (2, 2), f'fastcore {fastcore} is installed, not >= 2.2')
    check(version(py, 'torch', env).startswith('2.13.0'), f'torch {version(py, "torch", env)}: the CPU wheel 2.13.0 was replaced')
    dev = [d for d in ('nbdev', 'execnb', 'ghapi', 'pytest', 'hypothesis', 'jupytext', 'mypy', 'scikit-learn')
           if version(py, d, env) and not (with_fastai and d == 'scikit-learn')]
    check(not dev, f'development tools or extras in the user environment: {dev}')
    sh(py, '-m', 'pip', 'check', env=env)
    say(f'installed with fastcore {fastcore}, lightning {version(py, "lightning", env)}, '
        f'fastai {version(py, "fastai", env) or "(not installed)"}: pip check is clean, no development tools')

    # As a new user, from a blank folder outside the repository.
    user.mkdir()
    code = ("import fastbook_core, fastbook_core.basics, importlib, pkgutil, sys\n"
            "from pathlib import Path\n"
            f"assert Path(fastbook_core.__file__).is_relative_to({str(venv)!r}), fastbook_core.__file__\n"
            "optional = {'sklearn', 'pandas', 'tensorboard', 'mlflow'}\n"
            "for m in pkgutil.walk_packages(fastbook_core.__path__, 'fastbook_core.'):\n"
            "    if m.name.endswith('__main__'): continue\n"
            "    try: importlib.import_module(m.name)\n"
            "    except ModuleNotFoundError as e:\n"
            "        if e.name.split('.')[0] not in optional: raise\n"
            "        print(f'{m.name} needs an optional extra ({e.name})')\n"
            "from fastbook_core.basics import Learner, DataBunch, fit\n"
            "print('imported', fastbook_core.__version__, 'from', fastbook_core.__file__)\n")
    say(sh(py, '-c', code, cwd=user, env=env).stdout.strip().replace('\n', '; '))

    if not with_fastai:
        r = sh(py, '-m', PKG, '--epochs', '1', '--out', 'no_sklearn', cwd=user, env=env, ok=(1,))
        check(r.stderr.count('\n') == 1 and 'pip install "fastbook_core[datasets]"' in r.stderr and 'Traceback' not in r.stderr,
              f'without scikit-learn the main job must name the extra in one line, said:\n{r.stderr}')
        check(not (user / 'no_sklearn').exists(), 'the main job wrote its folder before finding scikit-learn missing')
        say(f'without scikit-learn: exit 1, {r.stderr.strip()!r}')

    sh(*pip, f'{wheel}[datasets]', TORCH, env=env)
    sh(py, '-m', 'pip', 'check', env=env)
    say(f'installed the datasets extra (scikit-learn {version(py, "scikit-learn", env)}); pip check is clean')
    # The main job in full from `python -m`; the console script for one epoch (tests/test_main_job.py checks that the
    # two train the same), to keep this test within a few minutes.
    plots = ['confusion_matrix.png', 'digits_cnn.pth', 'losses.png', 'lr_find.png', 'lr_mom.png', 'metrics.png']
    for name, cmd, epochs in [('python -m fastbook_core', [py, '-m', PKG], 2),
                              ('fastbook_train', [venv / 'bin' / 'fastbook_train'], 1)]:
        out = user / name.split()[-1]
        r = sh(*cmd, '--epochs', epochs, '--silent', '--out', out.name, cwd=user, env=env)
        last = r.stdout.strip().splitlines()[-1]
        check(last.startswith('accuracy: ') and float(last.split()[1]) > 0.8, f'{name}: {r.stdout[-2000:]}')
        found, expected = sorted(p.name for p in out.iterdir()), [f for f in plots if epochs > 1 or f != 'metrics.png']
        check(found == expected, f'{name} wrote {found}, not {expected}')
        r2 = sh(*cmd, '--epochs', '0', cwd=user, env=env, ok=(2,))
        check(r2.stderr.count('\n') == 1 and '--epochs must be at least 1' in r2.stderr, f'{name} --epochs 0: {r2.stderr}')
        check('(default: 8)' in sh(*cmd, '--help', cwd=user, env=env).stdout, f'{name} --help names no defaults')
        say(f'{name} --epochs {epochs}: {last}, {len(found)} files in {out.name}/; --epochs 0 exits 2; '
            f'--help names the defaults')
    say('passed')


if __name__ == '__main__': main()
