"""The images the Dockerfile builds: ``server`` (the default; no PyTorch) and ``worker``
(CPU PyTorch first, then the worker extra), and the compose file's use of them. Read from
the files themselves: there is no Docker engine here to build them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stages() -> dict[str, list[str]]:
    """Each build stage's instructions (continuation lines joined), by name, in order."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    current: list[str] = []
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


def test_the_default_image_is_the_server_without_torch() -> None:
    built = stages()
    assert list(built)[-1] == "server"  # the last stage is what a plain `docker build` makes
    server = built["server"]
    assert not any("torch" in line for line in server)
    assert any(re.fullmatch(r"RUN pip install \.", line) for line in server)
    assert server[-1] == 'CMD ["hypersweep", "serve", "--host", "0.0.0.0", "--port", "8000"]'


def test_the_worker_image_installs_cpu_torch_before_the_worker_extra() -> None:
    worker = stages()["worker"]
    installs = [line for line in worker if line.startswith("RUN pip install")]
    assert len(installs) == 2
    assert "torch==" in installs[0] and "$TORCH_INDEX_URL" in installs[0]
    assert "'.[worker]'" in installs[1]
    assert any(line.startswith("ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") for line in worker)
    assert worker[-1] == 'CMD ["hypersweep", "worker"]'


def test_both_images_get_the_package_and_every_folder_it_links_to() -> None:
    built = stages()
    copied = {line.split()[1] for line in built["source"] if line.startswith("COPY ")}
    links = {path.name for path in (ROOT / "hypersweep").iterdir() if path.is_symlink()}
    assert links == {"service", "worker", "trainer", "migrations"}
    assert {"hypersweep", "pyproject.toml", *links} <= copied
    for image in ("server", "worker"):
        assert "COPY --from=source /app /app" in built[image]


def test_compose_runs_the_api_on_the_server_image_and_workers_on_the_worker_image() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("migrate", "api"):
        assert services[name]["build"]["target"] == "server", name
    assert services["worker"]["build"]["target"] == "worker"
    assert services["worker"]["image"] != services["api"]["image"]
    assert services["api"]["image"] == services["migrate"]["image"]
