"""``python -m hypersweep.worker``: the same command as ``hypersweep worker``."""

import typer

from hypersweep.worker.cli import worker_command


def main() -> None:
    typer.run(worker_command)


if __name__ == "__main__":
    main()
