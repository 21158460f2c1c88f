"""Resilient service-to-service HTTP: call by logical name with deadlines, retries, a circuit
breaker and a bulkhead per upstream, policy from ``FLOTILLA_UPSTREAMS``::

    from flotilla.http import ServiceClient

    client = ServiceClient(app)                  # policies and discovery from settings
    response = client.get("catalog", "/products/42")

Each piece (policy, retry, breaker, bulkhead, deadline) is its own module and usable alone.
"""

from flotilla.http.breaker import CircuitBreaker, State
from flotilla.http.bulkhead import Bulkhead
from flotilla.http.client import ServiceClient
from flotilla.http.deadline import (
    DEADLINE_HEADER,
    Deadline,
    Deadlines,
    check_deadline,
    current_deadline,
    deadline_scope,
    remaining_budget,
)
from flotilla.http.errors import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceeded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from flotilla.http.policy import ClientSettings, UpstreamPolicy, load_client_settings
from flotilla.http.retry import Backoff, RetryBudget

__all__ = [
    "DEADLINE_HEADER",
    "Backoff",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientSettings",
    "Deadline",
    "DeadlineExceeded",
    "Deadlines",
    "RetryBudget",
    "ServiceClient",
    "State",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamPolicy",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "check_deadline",
    "current_deadline",
    "deadline_scope",
    "load_client_settings",
    "remaining_budget",
]
