"""Train the MNIST-1D CNN once: the command form of a hypersweep program.

    python train.py                                  # the defaults
    python train.py --lr 0.01 --channels 48 --epochs 20

Every setting of ``cnn.Settings`` is a flag, ``--name value`` or ``--name=value``. The
worker passes each trial's settings as ``--name=value`` (its ``{args}``), some of them the
worker's own (``divergence_factor``, ...): flags this script does not know are ignored.

Progress goes to standard output as ``@hypersweep {"step": N, ...}`` lines, one before
training and one per epoch, and the final metrics as ``@hypersweep {"final": {...}}``.
Run by a worker with a checkpoint root, it saves each epoch in ``HYPERSWEEP_CHECKPOINT_DIR``
and goes on from there when its trial runs again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

from cnn import Settings, fit

try:
    from hypersweep import report
except ImportError:  # hypersweep not installed, or older than hypersweep.report: same line format

    def report(step: int, **metrics: float) -> None:
        print("@hypersweep " + json.dumps({"step": step, **metrics}), flush=True)


def parse_settings(argv: list[str]) -> Settings:
    # allow_abbrev=False: an unknown --d=... must not be taken for --dropout
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    for field in fields(Settings):
        parser.add_argument(
            f"--{field.name}", default=field.default, metavar=str(field.type).upper(), help=f"default {field.default}"
        )
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"train.py: ignoring settings it does not use: {' '.join(unknown)}", file=sys.stderr)
    return Settings.from_mapping(vars(args))


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(sys.argv[1:] if argv is None else argv)
    final = fit(settings, report, os.environ.get("HYPERSWEEP_CHECKPOINT_DIR"))
    print("@hypersweep " + json.dumps({"final": final}), flush=True)


if __name__ == "__main__":
    main()
