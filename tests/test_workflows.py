"nbdev's GitHub conventions: the CI and docs workflows parse, and run what the README and .ci/run say they run."
import re
from configparser import ConfigParser
from pathlib import Path

import yaml  # PyYAML: nbdev needs it, so the dev extra has it

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / '.github' / 'workflows'


def _load(name: str) -> dict:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(wf, dict) and wf.get('jobs'), f'{name} has no jobs'
    # YAML 1.1 (PyYAML) reads the bare key `on` as True: GitHub reads it as the triggers.
    wf['on'] = wf.pop(True, wf.get('on'))
    return wf


def _runs(job: dict) -> list[str]:
    "Each command line of a job's `run` steps, stripped."
    return [l.strip() for s in job['steps'] if 'run' in s for l in s['run'].splitlines() if l.strip()]


def _readme_test_command() -> str:
    text = (ROOT / 'README.md').read_text()
    cmds = [l.strip() for l in re.findall(r'^pip install .*$', text, flags=re.M) if 'pytest' in l]
    assert len(cmds) == 1, cmds
    return cmds[0]


def _settings() -> dict:
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    return cfg['DEFAULT']


def _torch_floor() -> str:
    from packaging.requirements import Requirement
    req = next(Requirement(r) for r in _settings()['requirements'].split() if r.startswith('torch'))
    return next(s.version for s in req.specifier if s.operator == '>=')


def test_workflows_parse():
    for name in ('test.yaml', 'deploy.yaml'):
        wf = _load(name)
        assert wf['name'] and wf['on'], name
        for job_name, job in wf['jobs'].items():
            assert job['runs-on'] == 'ubuntu-latest' and job['steps'], (name, job_name)


def test_ci_workflow_runs_the_readme_test_command():
    wf = _load('test.yaml')
    assert {'push', 'pull_request'} <= set(wf['on'])
    test_cmd = _readme_test_command()
    assert test_cmd in _runs(wf['jobs']['test'])
    # What .ci/run checks before the test command, the workflow checks too.
    runs = _runs(wf['jobs']['test'])
    ci = (ROOT / '.ci' / 'run').read_text()
    for cmd in ('nbdev_export', 'nbdev_clean', 'python tools/make_readme.py --check', 'python tools/check_outputs.py',
                'python tools/test_wheel.py'):
        assert re.search(rf'^{re.escape(cmd)}$', ci, re.M), f'.ci/run does not run {cmd}'
        assert cmd in runs, f'test.yaml does not run {cmd}'


def test_ci_workflow_tests_the_torch_releases_ci_tests():
    "The other job runs the README's test command on each torch release .ci/run tests besides 2.13.0, floor included."
    job = _load('test.yaml')['jobs']['torch']
    versions = [str(v) for v in job['strategy']['matrix']['torch']]
    test_cmd = _readme_test_command()
    assert test_cmd.replace('torch==2.13.0', 'torch==${{ matrix.torch }}') in _runs(job)
    ci = (ROOT / '.ci' / 'run').read_text()
    ci_versions = set(re.findall(r'torch==(\d+\.\d+\.\d+)', ci)) - {'2.13.0'}
    assert set(versions) == ci_versions, (versions, ci_versions)
    assert '2.14.1' in versions
    floor = _torch_floor()
    assert any(v == floor or v.startswith(floor + '.') for v in versions), (floor, versions)


def test_workflows_use_the_python_of_settings():
    min_python = _settings()['min_python']
    wf = _load('test.yaml')
    for job in wf['jobs'].values():
        pys = [s['with']['python-version'] for s in job['steps'] if s.get('uses', '').startswith('actions/setup-python')]
        assert pys == [min_python]
    deploy = _load('deploy.yaml')['jobs']['deploy']['steps']
    assert [s['with']['version'] for s in deploy] == [min_python]  # quarto-ghp's default is 3.10


def test_deploy_builds_the_site_with_quarto_and_publishes_it():
    wf = _load('deploy.yaml')
    assert wf['on']['push']['branches'][0] in ('main', _settings()['branch'])
    assert wf['permissions']['contents'] == 'write' and wf['permissions']['pages'] == 'write'
    steps = wf['jobs']['deploy']['steps']
    # nbdev's action: pip install -e ".[dev]", nbdev_docs (nbdev_proc_nbs, then Quarto), publish _docs to gh-pages.
    assert [s['uses'] for s in steps] == ['fastai/workflows/quarto-ghp@master']
    assert _settings()['doc_path'] == '_docs'


def test_readme_names_the_docs_commands_and_workflows():
    readme = (ROOT / 'README.md').read_text()
    for s in ('nbdev_preview', 'python tools/docs_preview.py', 'nbdev_docs', '.github/workflows/deploy.yaml',
              '.github/workflows/test.yaml'):
        assert s in readme, f'the README does not name {s}'
