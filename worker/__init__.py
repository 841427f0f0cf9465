"""The worker: a REST client for the hypersweep service and the loop that trains its trials.

``ServiceClient`` (``worker.client``) speaks the REST API; ``Agent`` (``worker.agent``)
claims trials, trains them with the built-in trainer and reports back.
"""

from hypersweep.worker.client import LeaseLost, RetryPolicy, ServiceClient, ServiceError, ServiceUnavailable

__all__ = ["LeaseLost", "RetryPolicy", "ServiceClient", "ServiceError", "ServiceUnavailable"]
