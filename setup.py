"""Packaging for fastbook_core, in nbdev 2's style: everything is read from settings.ini."""
from configparser import ConfigParser
from pathlib import Path
import setuptools
from setuptools.command.sdist import sdist


here = Path(__file__).parent
config = ConfigParser(delimiters=['='])
if not config.read(here/'settings.ini', encoding='utf-8'):
    raise FileNotFoundError(f"{here/'settings.ini'} is missing: setup.py reads the package's settings from it.")
cfg = config['DEFAULT']

expected = ('version description keywords author author_email license min_python user lib_name lib_path git_url '
            'requirements').split()
missing = [o for o in expected if o not in cfg]
if missing: raise KeyError(f"settings.ini lacks: {', '.join(missing)}")

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = {s[0]: s for s in ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']}
py_versions = '3.11 3.12 3.13'.split()
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
min_python = cfg['min_python']
if min_python not in py_versions: raise ValueError(f"settings.ini: min_python = {min_python}, not one of {py_versions}")

requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
# Optional extras: `extras` names them, each NAME's requirements are in NAME_requirements; `all` is every one of them,
# and `dev` adds the development tools to `all`, so that one `pip install -e ".[dev]"` installs what the tests use.
extras = {name: cfg.get(f'{name}_requirements', '').split() for name in cfg.get('extras', '').split()}
empty = [name for name, reqs in extras.items() if not reqs]
if empty: raise KeyError(f"settings.ini names the extras {empty} in `extras` but has no NAME_requirements for them")
if {'all', 'dev'} & extras.keys(): raise ValueError("settings.ini: `all` and `dev` are made by setup.py, not listed in `extras`")
all_extras = list(dict.fromkeys(r for reqs in extras.values() for r in reqs))
extras_require = {**extras, 'all': all_extras, 'dev': dev_requirements + all_extras}
console_scripts = cfg.get('console_scripts', '').split()
readme = here/'README.md'

# Every file in the package that is not Python source or a cache (py.typed, say) ships in the wheel. The sdist gets
# them too, as package data, and also settings.ini and the README, which this file reads to build the wheel.
lib_path = here/cfg['lib_path']
caches = {'__pycache__', '.mypy_cache', '.pytest_cache', '.ipynb_checkpoints'}
package_data = sorted(str(p.relative_to(lib_path)) for p in lib_path.rglob('*')
                      if p.is_file() and p.suffix not in ('.py', '.pyc') and not caches & set(p.relative_to(lib_path).parts))


class SdistWithSettings(sdist):
    "An sdist that carries settings.ini and README.md, which setup.py reads (no MANIFEST.in needed)."
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, list(dict.fromkeys([*files, 'settings.ini', 'README.md'])))


setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[cfg['status']],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + [f'Programming Language :: Python :: {v}' for v in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    package_data={cfg['lib_path']: package_data},
    include_package_data=True,
    install_requires=requirements,
    extras_require=extras_require,
    python_requires='>=' + min_python,
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    cmdclass={'sdist': SdistWithSettings},
    author=cfg['author'], author_email=cfg['author_email'],
    description=cfg['description'], keywords=cfg['keywords'],
)
