"""fastai v1 programs written by v1's users run on fastbook_core with only their imports changed (issue 27).

Each file in `tests/v1_corpus/` follows a public program that uses fastai v1's training core on its own data or
model; its header names the source and says what was adapted (the imports, `fastai` -> `fastbook_core`, and the
data loading, seeded synthetic data of the same shapes). Every program runs in its own process, in an empty
folder, as a user would run it. They are started together, a few at a time, so the whole corpus takes seconds.
"""
import importlib.util, os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / 'tests' / 'v1_corpus').glob('p*.py'))
TIMEOUT = 180  # seconds for one program (each takes seconds; the cap only stops a hung one, on a loaded machine)

# A program that fails only because of a documented deliberate difference from v1: its name, why, and where the
# difference is documented. Nothing else is listed here.
DELIBERATE = {}

# A program that fails today because of a library bug that has a fix request filed: its name and the request. These
# are strict xfails, so that the test fails as soon as the fix lands and the entry must go (never a place to park a
# failure without a request).
KNOWN_FAILING: dict = {}  # name -> why it fails and the request that fixes it (a strict xfail)


def _requires(path: Path) -> list:
    "Third-party packages a program needs beyond fastbook_core's own requirements (its `# requires:` line)."
    m = re.search(r'^# requires: (.+)$', path.read_text(), re.M)
    return m.group(1).split() if m else []


def _run(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND='Agg', PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    env.pop('FASTBOOK_PROGRESS', None)
    # several programs run at once: one thread each, or torch's threads fight over the cores (10x slower under load)
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): env.setdefault(var, '1')
    try:
        return subprocess.run([sys.executable, str(path)], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        text = lambda b: (b.decode(errors='replace') if isinstance(b, bytes) else b) or ''  # bytes, despite text=True
        return subprocess.CompletedProcess(e.cmd, returncode=-1, stdout=text(e.stdout),
                                           stderr=f'{text(e.stderr)}\ntimed out after {TIMEOUT}s')


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Start every program at once (a few processes at a time); each test waits for its own."
    pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)))
    futures = {p.name: pool.submit(_run, p, tmp_path_factory.mktemp(p.stem)) for p in CORPUS
               if all(importlib.util.find_spec(r) for r in _requires(p))}
    yield futures
    pool.shutdown(wait=True)


def test_the_corpus_has_programs_of_ten_sources_at_least():
    sources = {re.search(r'^# After: ([^,]+)', p.read_text(), re.M).group(1) for p in CORPUS}
    assert len(CORPUS) >= 10 and len(sources) >= 10, sources
    # ten of them at least name their public repository (`owner/name, path`), not only an index's file id
    named = {s for s in sources if re.fullmatch(r'[\w.-]+/[\w.-]+', s)}
    assert len(named) >= 10, sorted(named)


def _param(name: str):
    reason = DELIBERATE.get(name) or KNOWN_FAILING.get(name)
    return name if reason is None else pytest.param(name, marks=pytest.mark.xfail(reason=reason, strict=True))


def test_known_failing_programs_exist():
    names = {p.name for p in CORPUS}
    assert set(KNOWN_FAILING) <= names and set(DELIBERATE) <= names, (set(KNOWN_FAILING) | set(DELIBERATE)) - names


@pytest.mark.parametrize('name', [_param(p.name) for p in CORPUS])
def test_v1_program_runs(name, runs):
    path = ROOT / 'tests' / 'v1_corpus' / name
    missing = [r for r in _requires(path) if importlib.util.find_spec(r) is None]
    if missing: pytest.skip(f'{name} needs {", ".join(missing)}')
    res = runs[name].result()
    out = (res.stdout + res.stderr)[-3000:]
    assert res.returncode == 0, f'{name} exited with {res.returncode}:\n{out}'
