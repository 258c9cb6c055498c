"""SNS's errors, with the codes and HTTP statuses of botocore's `sns` model and SNS's wording
(clients and tests match on `Invalid parameter: ...` and `Topic does not exist`)."""

from __future__ import annotations

from sabio.errors import SabioError


class InvalidParameter(SabioError):
    code = "InvalidParameter"
    status = 400


class InvalidParameterValue(SabioError):
    code = "ParameterValueInvalid"
    status = 400


class NotFound(SabioError):
    code = "NotFound"
    status = 404


class AuthorizationError(SabioError):
    code = "AuthorizationError"
    status = 403


class MissingParameter(SabioError):
    """A required member absent (botocore checks this first; raw requests can skip it)."""

    code = "ValidationError"
    status = 400


class InvalidAction(SabioError):
    code = "InvalidAction"
    status = 400


class InternalError(SabioError):
    code = "InternalError"
    status = 500


def invalid(parameter: str, reason: str | None = None) -> InvalidParameter:
    """`Invalid parameter: <parameter>[ Reason: <reason>]`, SNS's one shape for bad input."""
    message = f"Invalid parameter: {parameter}"
    return InvalidParameter(f"{message} Reason: {reason}" if reason else message)


def topic_not_found() -> NotFound:
    return NotFound("Topic does not exist")


def subscription_not_found() -> NotFound:
    return NotFound("Subscription does not exist")


def missing(member: str) -> MissingParameter:
    return MissingParameter(
        f"1 validation error detected: Value null at '{member[0].lower()}{member[1:]}' failed "
        "to satisfy constraint: Member must not be null"
    )


class EmptyBatchRequest(SabioError):
    code = "EmptyBatchRequest"
    status = 400


class TooManyEntriesInBatchRequest(SabioError):
    code = "TooManyEntriesInBatchRequest"
    status = 400


class BatchEntryIdsNotDistinct(SabioError):
    code = "BatchEntryIdsNotDistinct"
    status = 400


class InvalidBatchEntryId(SabioError):
    code = "InvalidBatchEntryId"
    status = 400


class BatchRequestTooLong(SabioError):
    code = "BatchRequestTooLong"
    status = 400
