"Type checkers see the whole API: the Learner's own methods and the ones that train, callbacks and distributed add (issue 20)."
import re, subprocess, sys
from pathlib import Path
import pytest

pytest.importorskip('mypy')
here = Path(__file__).parent / 'typecheck'

@pytest.fixture(scope='module')
def errors():
    "mypy's errors on both scripts (one run: it takes a while), as {(file, line): code}."
    r = subprocess.run([sys.executable, '-m', 'mypy', '--no-incremental', '--follow-imports=silent', '--show-error-codes',
                        str(here / 'user_script.py'), str(here / 'wrong_script.py')],
                       capture_output=True, text=True, cwd=here.parent.parent)
    found = {(Path(f).name, int(l)): c for f, l, c in re.findall(r'^(\S+\.py):(\d+): error: .*\[([\w-]+)\]$', r.stdout, re.M)}
    assert found or r.returncode == 0, r.stdout + r.stderr   # mypy ran
    return found, r.stdout

def test_a_users_script_type_checks_cleanly(errors):
    found, out = errors
    assert not [k for k in found if k[0] == 'user_script.py'], out

def test_mistakes_in_a_users_script_are_found(errors):
    found, out = errors
    expected = {('wrong_script.py', 8): 'arg-type', ('wrong_script.py', 9): 'attr-defined',
                ('wrong_script.py', 10): 'attr-defined', ('wrong_script.py', 11): 'arg-type'}
    assert {k: v for k, v in found.items() if k[0] == 'wrong_script.py'} == expected, out

def test_the_package_ships_py_typed():
    import fastbook_core
    assert (Path(fastbook_core.__file__).parent / 'py.typed').is_file()
