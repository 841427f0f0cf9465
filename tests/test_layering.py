"""What each part of the package imports: the server none of the client side and no
PyTorch, ``import hypersweep`` and its client neither the server nor PyTorch. Each check
runs in a fresh interpreter, so nothing this test session imported hides a dependency."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import hypersweep.service

#: The modules outside ``hypersweep.service`` that the server may import.
SERVER_MAY_IMPORT = (
    "hypersweep",
    "hypersweep.limits",
    "hypersweep.sanity",  # the sanity checks' contract: plain Python, shared with the worker
    "hypersweep.trainer",
    "hypersweep.trainer.config",
)
#: Heavy or server-only packages the client must not import.
NOT_FOR_THE_CLIENT = ("torch", "sklearn", "fastapi", "sqlalchemy", "alembic", "optuna", "uvicorn")


def loaded_after(code: str) -> list[str]:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    names: list[str] = json.loads(result.stdout.splitlines()[-1])
    return names


def service_modules() -> list[str]:
    prefix = hypersweep.service.__name__ + "."
    return sorted(info.name for info in pkgutil.walk_packages(hypersweep.service.__path__, prefix))


def test_the_server_imports_nothing_of_the_client_side_and_no_torch() -> None:
    modules = service_modules()
    assert "hypersweep.service.app" in modules and "hypersweep.service.validation" in modules
    loaded = loaded_after("\n".join(f"import {name}" for name in modules))

    ours = [name for name in loaded if name == "hypersweep" or name.startswith("hypersweep.")]
    strays = [
        name
        for name in ours
        if not name.startswith(("hypersweep.service", "hypersweep.migrations")) and name not in SERVER_MAY_IMPORT
    ]
    assert strays == [], f"the server imports {strays}"
    assert not any(name.startswith("hypersweep.worker") for name in loaded)
    assert not any(name == "torch" or name.startswith("torch.") for name in loaded)


def test_import_hypersweep_and_its_client_stay_light() -> None:
    loaded = loaded_after(
        "import hypersweep\n"
        "client = hypersweep.Client('http://127.0.0.1:1')\n"
        "hypersweep.Sweep, hypersweep.Trial, hypersweep.Stage, hypersweep.ServiceError\n"
        "client.close()"
    )
    heavy = [name for name in loaded if name.partition(".")[0] in NOT_FOR_THE_CLIENT]
    assert heavy == []
    assert not any(name.startswith("hypersweep.service") for name in loaded)
    assert "hypersweep.client" in loaded


def test_import_hypersweep_alone_loads_no_client() -> None:
    loaded = loaded_after("import hypersweep")
    assert [name for name in loaded if name.startswith("hypersweep")] == ["hypersweep"]


def test_a_worker_for_users_programs_loads_no_torch() -> None:
    """A program worker (a command in any language) needs neither PyTorch nor the trainer."""
    loaded = loaded_after(
        "import hypersweep.worker.cli, hypersweep.worker.agent\n"
        "import hypersweep.worker.runners.command, hypersweep.worker.runners.function\n"
        "hypersweep.worker.cli.Program('toy', command=('python', 'train.py', '{args}')).runner()\n"
        "import hypersweep\n"
        "hypersweep.report, hypersweep.Trial, hypersweep.TrialStopped"
    )
    heavy = [name for name in loaded if name.partition(".")[0] in ("torch", "sklearn", "fastapi", "sqlalchemy")]
    assert heavy == []
    assert not any(name.startswith(("hypersweep.trainer", "hypersweep.service")) for name in loaded)
