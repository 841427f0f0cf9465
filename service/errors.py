"""Errors the data layer raises; the app turns each into its HTTP status."""

from __future__ import annotations

__all__ = ["Conflict", "LeaseConflict", "NotFound"]


class NotFound(LookupError):
    """404: no such sweep or trial."""

    def __init__(self, kind: str, ident: int) -> None:
        super().__init__(f"{kind} {ident} does not exist")


class Conflict(RuntimeError):
    """409: the request does not fit the current state."""


class LeaseConflict(Conflict):
    """409: the lease token is stale (expired, released or never held); nothing changed."""
