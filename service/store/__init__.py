"""Transactions over sweeps, trials and leases.

``Store`` (``transactions``) is the entry: each of its public methods is one transaction
and owns it. The statements it runs are grouped by what they act on: ``leases`` (a leased
trial: the holder's checks, its curve, its end, a lease given back or run out), ``stages``
(a stage's end and the next one's start, and the search policy's reads) and ``views``
(sweeps and trials as the API shows them).

Who owns a trial: a ``running`` trial belongs to the holder of its ``lease_token`` until
the lease expires; only that holder may report, heartbeat or finish it.

Locking order: everything that creates trials or starts them (a claim, a cancel, lease
expiry, a stage's end) first locks the sweep's row, then trial rows, so within one sweep
these are serial and budgets, parallelism and stage changes are exact; two transactions
never wait on each other. Finishes, releases, heartbeats and reports lock only their
trial's row; results a claim carries are finished in the claim's transaction, after the
sweep's lock.

Errors: ``NotFound`` for a sweep or trial that does not exist, ``LeaseConflict`` for a
trial not held with the token given, ``Conflict`` for a request the sweep's state refuses
(``service.errors``).
"""

from __future__ import annotations

from hypersweep.service.store.leases import AlreadyEnded, Ended, Ending, objective_value
from hypersweep.service.store.transactions import Store
from hypersweep.service.store.views import SORT_KEYS

__all__ = ["SORT_KEYS", "AlreadyEnded", "Ended", "Ending", "Store", "objective_value"]
