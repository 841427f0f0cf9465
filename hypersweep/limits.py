"""Limits of the worker protocol, shared by the server and the worker.

The server refuses a request past one of these (422); the worker keeps its requests inside
them. Defined once here so the two sides cannot disagree. This module imports nothing, so
the worker's command line can read it without loading the server or torch.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "MAX_CLAIM",
    "MAX_CURVES",
    "MAX_ID",
    "MAX_LEASE_SECONDS",
    "MAX_POINTS",
    "MAX_REPORT_EVERY",
    "MAX_STEP",
    "MIN_LEASE_SECONDS",
    "TOKEN_PATTERN",
]

#: The most trials one claim may ask for, and the most results it may carry; also the
#: largest number of trials a worker fuses into one batched model.
MAX_CLAIM = 64
#: The most curve points one request may carry.
MAX_POINTS = 1000
#: The largest id (and offset) a request may carry: ids are 32-bit integers on PostgreSQL,
#: and a larger number in a query fails there instead of matching nothing.
MAX_ID = 2**31 - 1
#: How long a claim or a heartbeat keeps a trial, in seconds, unless the server is
#: configured otherwise (``HYPERSWEEP_LEASE_SECONDS``); a worker that cannot read the
#: lease's end from an answer assumes this.
DEFAULT_LEASE_SECONDS = 60.0
#: The range of ``HYPERSWEEP_LEASE_SECONDS``: a second at least (workers renew a lease a
#: few times within it), a week at most.
MIN_LEASE_SECONDS = 1.0
MAX_LEASE_SECONDS = 7 * 24 * 3600.0
#: The most seconds a worker may wait between sending a trial's metrics
#: (``HYPERSWEEP_REPORT_EVERY``).
MAX_REPORT_EVERY = 3600.0
#: What a bearer token may hold (``HYPERSWEEP_TOKEN``, ``HYPERSWEEP_WORKER_TOKEN``): visible
#: ASCII characters without spaces, which an HTTP header carries as they are.
TOKEN_PATTERN = r"[!-~]+"

#: The largest step a curve point may have (a report every training step of a long run fits).
MAX_STEP = 10_000_000

#: The most trials one request for curves (``GET /sweeps/{id}/curves``) may name.
MAX_CURVES = 50
