"The repository's own promises: README from the index notebook, CI calling the README's test command."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _readme_commands():
    text = (ROOT / 'README.md').read_text()
    return [l.strip() for l in re.findall(r'^pip install .*$', text, flags=re.M) if 'torch==' in l]


def test_readme_has_the_two_commands():
    cmds = _readme_commands()
    assert any('python -m fastbook_core' in c for c in cmds)
    assert any('nbdev_test' in c and 'pytest' in c for c in cmds)


def test_ci_runs_the_readme_test_command():
    test_cmd = next(c for c in _readme_commands() if 'pytest' in c)
    assert test_cmd in (ROOT / '.ci' / 'run').read_text()


def test_settings_pin_nbdev_2():
    cfg = (ROOT / 'settings.ini').read_text()
    assert 'nbdev==2.4.14' in cfg and 'fastcore>=1.12.27,<2' in cfg and 'execnb<0.2' in cfg and 'ghapi<2' in cfg
    assert 'lib_name = %(repo)s' in cfg and 'repo = fastbook_core' in cfg
