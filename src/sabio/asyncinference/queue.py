"""The durable queue behind InvokeEndpointAsync: what a backend must offer.

A request is enqueued before the client hears 202, claimed with a lease by the dispatcher, and
removed once answered. A lease that runs out (the server died mid-request) returns the request
to the queue, so every accepted request is answered even across crashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

PENDING = "Pending"
IN_PROGRESS = "InProgress"


@dataclass(frozen=True)
class AsyncRequest:
    """One accepted request. `request` holds what the dispatcher needs to answer it: headers
    for the model, input and output locations, notification topics."""

    id: str
    endpoint: str
    inference_id: str
    received_at: float
    expires_at: float
    invocation_timeout: float
    request: dict[str, Any]
    body: bytes | None = None
    attempts: int = 0
    lease_token: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Backlog:
    """What waits for an endpoint: queued plus in flight, and how old the oldest one is."""

    size: int
    oldest_received_at: float | None


class InvocationQueue(Protocol):
    def enqueue(self, request: AsyncRequest) -> None:
        """Persist the request (durably, before returning)."""
        ...

    def claim(
        self, endpoint: str, limit: int, lease_seconds: float, now: float
    ) -> list[AsyncRequest]:
        """Up to `limit` of the endpoint's oldest requests that are waiting or whose lease ran
        out, each leased until `now + lease_seconds`. Two claimers never get the same request
        while its lease holds."""
        ...

    def extend(self, tokens: Sequence[str], lease_seconds: float, now: float) -> int:
        """Keep holding the requests claimed under these lease tokens; returns how many."""
        ...

    def complete(self, request: AsyncRequest) -> bool:
        """The request was answered: remove it. False when the lease had been lost (and so
        someone else may answer it; the answer is written only once either way)."""
        ...

    def release(self, request: AsyncRequest) -> None:
        """Give a claimed request back to the queue unanswered (shutting down, no capacity)."""
        ...

    def expired(self, now: float, limit: int) -> list[AsyncRequest]:
        """Waiting requests whose time to live ran out, claimed like `claim` for answering."""
        ...

    def backlog(self, endpoints: Sequence[str]) -> dict[str, Backlog]:
        """The backlog of each named endpoint (endpoints with none are left out)."""
        ...

    def abandoned(
        self, keep: Sequence[str], limit: int, lease_seconds: float, now: float
    ) -> list[AsyncRequest]:
        """Waiting requests of endpoints not named in `keep` (deleted ones), claimed like
        `claim` so that each is failed once, even across a crash."""
        ...

    def purge(self, endpoint: str) -> int:
        """Drop every request of a deleted endpoint; returns how many."""
        ...
