"""One error root carrying the AWS error code and HTTP status.

Only the protocol adapters in `sabio.api` know how to put these on the wire.
"""

from __future__ import annotations

from typing import Any


class SabioError(Exception):
    """Base of every error a client may see; `code` is the AWS error code."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class ValidationError(SabioError):
    """Bad input, an unknown resource or a duplicate: SageMaker's `ValidationException`."""

    code = "ValidationException"
    status = 400


class SerializationError(SabioError):
    code = "SerializationException"
    status = 400


class UnknownOperationError(SabioError):
    code = "UnknownOperationException"
    status = 400


class ResourceNotFoundError(SabioError):
    code = "ResourceNotFound"
    status = 400


class ResourceInUseError(SabioError):
    code = "ResourceInUse"
    status = 400


class ResourceLimitExceededError(SabioError):
    code = "ResourceLimitExceeded"
    status = 400


class PayloadTooLargeError(SabioError):
    code = "ValidationException"
    status = 413


# Runtime (rest-json) errors, as the sagemaker-runtime model defines them.


class RuntimeValidationError(SabioError):
    code = "ValidationError"
    status = 400


class RuntimePayloadTooLargeError(RuntimeValidationError):
    status = 413


class ModelError(SabioError):
    """The model container failed a request: 424, never a bare 5xx that botocore re-sends."""

    code = "ModelError"
    status = 424


class ModelNotReadyError(SabioError):
    code = "ModelNotReadyException"
    status = 429


class InternalFailureError(SabioError):
    code = "InternalFailure"
    status = 500


def not_found(kind: str, arn: str) -> ValidationError:
    """SageMaker's wording, which waiters and the SageMaker SDK match on."""
    return ValidationError(f'Could not find {kind} "{arn}".')


def already_exists(kind: str, arn: str) -> ValidationError:
    return ValidationError(f'Cannot create already existing {kind} "{arn}".')


# CloudWatch Logs errors, as the logs model defines them.


class LogResourceNotFoundError(SabioError):
    code = "ResourceNotFoundException"
    status = 400


class InvalidParameterError(SabioError):
    code = "InvalidParameterException"
    status = 400
