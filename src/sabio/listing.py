"""What every SageMaker List operation shares: filters, sorting and `NextToken` paging."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from sabio.errors import ValidationError
from sabio.store.entities import ListQuery, Resource
from sabio.store.repository import Repository

_SORT_BY = {"Name": "Name", "CreationTime": "CreationTime", "Status": "Status"}


def encode_token(offset: int, kind: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "k": kind}).encode()).decode()


def decode_token(token: str | None, kind: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(data["o"])
        if data["k"] != kind or offset < 0:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValidationError(f"The NextToken '{token[:64]}' is not valid.") from exc
    return offset


def query_from_request(
    request: Mapping[str, Any], kind: str, *, default_limit: int = 100
) -> ListQuery:
    """Build a store query from the members SageMaker's List operations share."""
    sort_by = _SORT_BY.get(request.get("SortBy") or "CreationTime", "CreationTime")
    return ListQuery(
        name_contains=request.get("NameContains"),
        created_after=request.get("CreationTimeAfter"),
        created_before=request.get("CreationTimeBefore"),
        modified_after=request.get("LastModifiedTimeAfter"),
        modified_before=request.get("LastModifiedTimeBefore"),
        status=request.get("StatusEquals"),
        sort_by=sort_by,
        descending=(request.get("SortOrder") or "Descending") == "Descending",
        offset=decode_token(request.get("NextToken"), kind),
        limit=int(request.get("MaxResults") or default_limit),
    )


def list_page(
    repository: Repository,
    kind: str,
    request: Mapping[str, Any],
    result_key: str,
    summarize: Callable[[Resource], dict[str, Any]],
) -> dict[str, Any]:
    """One page of summaries under `result_key`, with `NextToken` when more follow."""
    query = query_from_request(request, kind)
    rows = repository.list(kind, query)
    response: dict[str, Any] = {result_key: [summarize(r) for r in rows[: query.limit]]}
    if len(rows) > query.limit:
        response["NextToken"] = encode_token(query.offset + query.limit, kind)
    return response
