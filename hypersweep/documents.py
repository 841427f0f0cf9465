"""Sweep documents from files: YAML, or JSON (which is YAML)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_VALUES", "DocumentError", "load_document"]

#: The deepest a document may nest mappings and lists; a sweep document needs a handful.
MAX_DEPTH = 64
#: The most values (mappings, lists and scalars) a document may hold once its YAML aliases
#: are expanded: aliases repeated within aliases grow a short file beyond any request.
MAX_VALUES = 1_000_000


class DocumentError(ValueError):
    """A sweep document file that cannot be read, is not YAML, holds no mapping, or holds
    what JSON cannot carry. The message is one sentence naming the file."""


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sweep document in the file at ``path``, as the mapping the REST API takes.

    Dates and times are read as the text they are written as (``name: 2024-01-01`` is the
    name ``"2024-01-01"``). Checks only that the document is a mapping JSON can carry
    (no recursive anchors, at most :data:`MAX_DEPTH` levels and :data:`MAX_VALUES`
    values); the server checks the rest when it is submitted. Raises :class:`DocumentError`."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(f"cannot read {path}: {exc}") from None
    try:
        document = yaml.load(text, Loader=_loader())  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"{path} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise DocumentError(f"{path} is nested too deeply to read (a sweep document needs a few levels)") from None
    if not isinstance(document, dict):
        raise DocumentError(f"{path} must hold a sweep document (a mapping with name, space, stages, ...)")
    _check_json(document, path)
    return document


@functools.cache
def _loader() -> type:
    """PyYAML's safe loader, reading timestamps as text: a sweep document is JSON, which
    has no dates, and a name such as 2024-01-01 is meant as text."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    timestamp = "tag:yaml.org,2002:timestamp"
    Loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != timestamp]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


_SCALARS = (str, int, float, bool, type(None))


def _check_json(document: dict[str, Any], path: Path) -> None:
    """Raise :class:`DocumentError` unless ``document`` is what JSON can carry: mappings with
    scalar keys, lists and scalars, nested at most :data:`MAX_DEPTH` deep, not containing
    themselves, :data:`MAX_VALUES` values at most."""
    seen = 0
    # Depth first, with each value's location and the containers above it.
    stack: list[tuple[Any, str, frozenset[int]]] = [(document, "", frozenset())]
    while stack:
        value, where, above = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise DocumentError(f"{path} holds more than {MAX_VALUES:,} values once its YAML aliases are expanded")
        if isinstance(value, _SCALARS):
            continue
        at = f" at {where}" if where else ""
        if not isinstance(value, dict | list):
            raise DocumentError(
                f"{path}: the {type(value).__name__}{at} is not a value a sweep document can hold; "
                "quote it to make it text"
            )
        if id(value) in above:
            raise DocumentError(
                f"{path}: the alias{at} refers back to a mapping or list that contains it (a recursive YAML anchor)"
            )
        if len(above) >= MAX_DEPTH:
            raise DocumentError(f"{path} is nested more than {MAX_DEPTH} levels deep (at {where[:60]}...)")
        inside = above | {id(value)}
        if isinstance(value, list):
            stack.extend(
                (item, f"{where}.{index}" if where else str(index), inside) for index, item in enumerate(value)
            )
            continue
        for key, item in value.items():
            if not isinstance(key, _SCALARS):
                raise DocumentError(f"{path}: a key{at} is a {type(key).__name__}; keys must be text")
            stack.append((item, f"{where}.{key}" if where else str(key), inside))
