"""A non-editable install, used as a user would: from another folder, offline, writing nothing into site-packages.

The wheel is built from a copy of the sources (the repo gets no build/ folder) without build isolation and
installed with --no-deps --no-index into a fresh venv that borrows this venv's dependencies through a .pth
file: no download. Part of `make test`: ~20 s, most of it the Numba kernels compiling for the new location.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.install


def files_under(folder: Path) -> set[str]:
    """Every file below `folder` except Python's and Numba's compiled caches (__pycache__)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder, site-packages) of a temporary venv with tinyprompt installed from a wheel."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    shutil.copytree(REPO / "tinyprompt", source / "tinyprompt", ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / file, source / file)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]
    # -v -v (against --quiet's one): pip shows the build backend's own output, where setuptools warns
    build = subprocess.run([*pip, "-v", "-v", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                            str(source)], check=True, capture_output=True, text=True)
    (tmp / "build.log").write_text(build.stdout + build.stderr)
    venv.create(tmp / "venv", with_pip=False)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index",
                    *map(str, (tmp / "dist").glob("*.whl"))], check=True, capture_output=True)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The dependencies (numpy, numba, ...) from this venv, after the new one's own packages on sys.path.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python.parent, site


def test_the_build_prints_no_warning_from_our_packaging(installed):
    """setuptools once warned on every install that 'tinyprompt.assets' (a folder Python can import, with no
    code) was absent from the `packages` configuration: the first thing a new user read."""
    bin_dir, _ = installed
    log = (bin_dir.parent.parent / "build.log").read_text()
    assert "copying tinyprompt/assets/encoder.json" in log  # the log really holds setuptools' output
    warnings = [line for line in log.splitlines() if "Warning" in line or "is absent from the" in line]
    assert not warnings, warnings


def run(installed, tmp_path, *command):
    """A command from an empty folder, with a fresh HOME (so fresh caches) and the hub switched off."""
    bin_dir, _ = installed
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TINYPROMPT_", "XDG_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    return subprocess.run(command, cwd=tmp_path / "elsewhere", env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_the_package_is_the_installed_copy_with_all_its_assets(installed, tmp_path):
    _, site = installed
    result = run(installed, tmp_path, "python", "-c", "import tinyprompt; print(tinyprompt.__file__)")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == site / "tinyprompt" / "__init__.py"  # not the repo's (editable)
    package = REPO / "tinyprompt"
    shipped = {f for f in files_under(package) if f.startswith("assets/") or f.endswith(".py")}
    assert shipped <= files_under(site / "tinyprompt"), shipped - files_under(site / "tinyprompt")
    assert "assets/data/sst2/dev.tsv" in shipped  # the demo's data travels with the package


def test_commands_work_from_another_folder_and_write_nothing_into_site_packages(installed, tmp_path):
    _, site = installed
    before = files_under(site)
    for command in (["tinyprompt", "--help"], ["python", "-m", "tinyprompt", "--help"]):
        result = run(installed, tmp_path, *command)
        assert result.returncode == 0 and result.stdout.startswith("usage: tinyprompt"), result.stderr
    result = run(installed, tmp_path, "tinyprompt", "generate", "--model", "tiny-random", "--max-new-tokens", "3",
                 "Hello")
    assert result.returncode == 0 and result.stdout.startswith("Hello"), result.stderr
    assert (tmp_path / "home" / ".cache" / "tinyprompt" / "tiny-random" / "model.safetensors").is_file()
    result = run(installed, tmp_path, "python", "-m", "tinyprompt.demo", "--model", "tiny-random", "--rows", "16",
                 "--dev-rows", "8", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere" / "runs" / "demo" / "adapter_model.safetensors").is_file()
    assert files_under(site) == before  # no weights, data or runs in site-packages
    assert not list((tmp_path / "elsewhere").glob("weights*"))
