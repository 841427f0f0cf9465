"""A worker process that runs the real pull loop (``worker.agent.Agent`` on a real
``ServiceClient``: claims, the per-trial report and heartbeat thread, finish, release,
retries) with a stand-in for training, so that dozens of them fit on a small machine.

PyTorch stays out of these processes: the trainer's modules that import it are replaced
by stubs before ``worker.agent`` is imported (the agent imports the trainer's entry points
by name), and the agent gets a stand-in ``train_fn``. Each epoch sleeps
``--epoch-seconds`` and reports ``val_accuracy`` (a fixed function of the trial's ``lr``)
and ``worker`` (this process's worker id), so a test can tell who wrote a curve point.

Run as ``python -m tests.reliability.agent --server URL --sweep ID --worker-id NAME`` (the
token from ``HYPERSWEEP_TOKEN``); without ``--sweep`` it serves every running sweep until
stopped. SIGTERM stops it after the current epoch and releases the trial, as the real
worker does. Exits 0 when the sweep is over (or it was stopped), 1 when the server refused
it or stayed unreachable.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

#: The trainer's modules that import PyTorch at their top.
TORCH_MODULES = (
    "hypersweep.trainer.loop",
    "hypersweep.trainer.data",
    "hypersweep.trainer.model",
    "hypersweep.trainer.fused",
)


class _Stub(types.ModuleType):
    """A module whose every public name is a placeholder that does nothing and returns None."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder


def _placeholder(*args: Any, **kwargs: Any) -> None:
    return None


@dataclass
class FakeResult:
    status: str
    metrics: dict[str, Any]


def score(params: dict[str, Any]) -> float:
    """The stand-in objective: best at ``lr = 1e-2``, in (0, 1]."""
    lr = float(params.get("lr", 1e-2))
    return 1.0 / (1.0 + abs(math.log10(lr) + 2.0))


def make_train(worker_id: str, epoch_seconds: float) -> Callable[..., FakeResult]:
    def fake_train(config: Any, *, on_epoch: Callable[[int, dict[str, Any]], bool], **_: Any) -> FakeResult:
        accuracy = score({"lr": config.lr})
        for epoch in range(1, config.epochs + 1):
            time.sleep(epoch_seconds)
            metrics = {"val_accuracy": accuracy * epoch / config.epochs, "train_loss": 1.0 / epoch}
            if not on_epoch(epoch, {**metrics, "worker": worker_id}):
                return FakeResult("completed", {**metrics, "epochs_run": epoch, "stop_reason": "stopped"})
        final = {"val_accuracy": accuracy, "train_loss": 1.0 / config.epochs, "epochs_run": config.epochs}
        return FakeResult("completed", {**final, "stop_reason": "completed", "worker": worker_id})

    return fake_train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", default=os.environ.get("HYPERSWEEP_TOKEN"))
    parser.add_argument("--sweep", type=int, default=None)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--epoch-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)

    for name in TORCH_MODULES:
        sys.modules[name] = _Stub(name)
    from hypersweep.worker.agent import Agent, IdleBackoff
    from hypersweep.worker.client import ServiceClient, ServiceError

    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.worker_id} %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The client as ``hypersweep worker`` builds it, with its retry policy.
    with ServiceClient.connect(args.server, token=args.token) as client:
        agent = Agent(
            client,
            worker_id=args.worker_id,
            sweep_id=args.sweep,
            backoff=IdleBackoff(base=0.05, cap=0.5),
            train_fn=make_train(args.worker_id, args.epoch_seconds),
        )

        def on_signal(signum: int, frame: FrameType | None) -> None:
            agent.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        try:
            ran = agent.run()
        except ServiceError as exc:
            logging.error("%s", exc)
            return 1
    outcomes = {o.value: agent.outcomes.count(o) for o in set(agent.outcomes)}
    logging.info("done after %d trial(s): %s", ran, outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
