"""Sweep documents from files: YAML, or JSON (which is YAML)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["DocumentError", "load_document"]


class DocumentError(ValueError):
    """A sweep document file that cannot be read, is not YAML, or holds no mapping.
    The message is one sentence naming the file."""


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sweep document in the file at ``path``, as the mapping the REST API takes.

    Checks only that it is a mapping; the server checks the rest when it is submitted.
    Raises :class:`DocumentError`."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(f"cannot read {path}: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(document, dict):
        raise DocumentError(f"{path} must hold a sweep document (a mapping with name, space, stages, ...)")
    return document
