"""``hypersweep.limits``: the wire limits, readable without loading the server or torch."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_limits_import_nothing_heavy() -> None:
    code = "import json, sys, hypersweep.limits; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout)
    heavy = {"torch", "sqlalchemy", "fastapi", "httpx", "pydantic", "hypersweep.service", "hypersweep.worker"}
    assert heavy.isdisjoint(loaded)
