"""Application Auto Scaling's own error codes (its `ValidationException` is the shared one)."""

from __future__ import annotations

from sabio.errors import SabioError


class ObjectNotFoundError(SabioError):
    code = "ObjectNotFoundException"
    status = 400


class InvalidNextTokenError(SabioError):
    code = "InvalidNextTokenException"
    status = 400


def target_not_found(resource_id: str, namespace: str, dimension: str) -> ObjectNotFoundError:
    return ObjectNotFoundError(
        f"No scalable target registered for service namespace: {namespace}, "
        f"resource ID: {resource_id}, scalable dimension: {dimension}"
    )
