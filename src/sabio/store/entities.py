"""Domain entities read from and written to the metadata store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Resource:
    """One SageMaker resource: its accepted request (`spec`) and controller-owned `state`."""

    kind: str
    name: str
    arn: str
    spec: dict[str, Any]
    created_at: float
    updated_at: float
    status: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ListQuery:
    """What every SageMaker List operation filters, sorts and pages by."""

    name_contains: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    status: str | None = None
    sort_by: str = "CreationTime"
    descending: bool = True
    offset: int = 0
    limit: int = 100
