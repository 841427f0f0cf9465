"""The distribution: one wheel whose only top-level name is ``hypersweep``, which works
installed anywhere, next to a user's own ``trainer.py`` and ``worker/`` package."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What a build needs from the repository (the Dockerfile copies the same): hypersweep/
#: links to the other four folders.
SOURCE = ["pyproject.toml", "README.md", "hypersweep", "service", "worker", "trainer", "migrations"]

#: A user's files that share names with the repository's folders; importing them fails.
USER_FILES = {
    "trainer.py": "raise ImportError('the user trainer.py was imported')\n",
    "worker/__init__.py": "raise ImportError('the user worker package was imported')\n",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the source (links kept as links), outside the repository."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCE:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    assert (source / "hypersweep" / "service").is_symlink()
    out = tmp_path_factory.mktemp("wheels")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("hypersweep-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    return target


def test_the_wheel_holds_only_the_hypersweep_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"  # hypersweep-<version>.dist-info
    assert {name.split("/")[0] for name in names} == {"hypersweep", dist_info}
    for module in ("service/app.py", "worker/agent.py", "trainer/loop.py", "migrations/env.py", "client.py"):
        assert f"hypersweep/{module}" in names
    assert any(name.startswith("hypersweep/migrations/versions/") for name in names)
    assert any(name.startswith("hypersweep/service/dashboard/static/") for name in names)
    assert "hypersweep/examples/digits-coarse-to-fine.yaml" in names


def run_installed(installed: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with the installed wheel first on the path, in a folder holding the
    user's look-alike files."""
    for name, text in USER_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_the_installed_package_imports_beside_a_users_trainer_and_worker(installed: Path, tmp_path: Path) -> None:
    code = (
        "import hypersweep; hypersweep.Client; "
        "import hypersweep.worker.agent, hypersweep.trainer.loop, hypersweep.service.app; "
        "print(hypersweep.__file__)"
    )
    result = run_installed(installed, tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed)


def test_the_installed_command_line_starts(installed: Path, tmp_path: Path) -> None:
    result = run_installed(installed, tmp_path, "-m", "hypersweep", "worker", "--help")
    assert result.returncode == 0, result.stderr
    assert "--concurrency" in result.stdout
