"""environment.yml (conda) and pyproject.toml (pip) must declare the same dependencies."""

import re

import tomllib
import yaml
from conftest import ROOT

#: conda-forge names that differ from the PyPI ones.
CONDA_TO_PYPI = {"docker-py": "docker"}
NOT_PACKAGES = {"python", "pip"}


def _name_and_spec(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    return match.group(1).lower(), match.group(2).replace(" ", "")


def conda_dependencies() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = _name_and_spec(dep)
            if name not in NOT_PACKAGES:
                deps[CONDA_TO_PYPI.get(name, name)] = spec
    return deps


def pip_dependencies() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(_name_and_spec(req) for req in project["dependencies"])


def test_conda_and_pip_declare_the_same_dependencies():
    assert conda_dependencies() == pip_dependencies()


def test_conda_environment_installs_this_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section
