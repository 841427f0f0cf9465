"""The worker: a REST client for the hypersweep service and the loop that trains its trials.

``ServiceClient`` (``worker.client``) speaks the REST API and answers with the typed
objects of ``worker.wire`` (a claimed trial is a ``ClaimedTrial``: its raw ``settings`` and
the trainer ``config`` read from them once); ``Agent`` (``worker.agent``) claims trials,
trains them with the built-in trainer and reports back.
"""

from hypersweep.worker.client import LeaseLost, RetryPolicy, ServiceClient, ServiceError, ServiceUnavailable
from hypersweep.worker.wire import ClaimedTrial

__all__ = ["ClaimedTrial", "LeaseLost", "RetryPolicy", "ServiceClient", "ServiceError", "ServiceUnavailable"]
