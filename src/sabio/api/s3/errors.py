"""S3's errors and their XML form.

The artifact store raises S3-coded errors already (`sabio.artifacts.errors`); these are the
ones only the wire protocol can cause. botocore re-sends 5xx answers, so nothing a client can
fix is ever a 5xx, and unsupported features are 501 `NotImplemented` only where S3 uses it."""

from __future__ import annotations

from xml.sax.saxutils import escape

from sabio.errors import SabioError, ValidationError


class S3Error(SabioError):
    code = "InvalidRequest"
    status = 400


class InvalidRequestError(S3Error):
    code = "InvalidRequest"


class InvalidArgumentError(S3Error):
    code = "InvalidArgument"


class InvalidBucketNameError(S3Error):
    code = "InvalidBucketName"


class KeyTooLongError(S3Error):
    code = "KeyTooLongError"


class InvalidURIError(S3Error):
    code = "InvalidURI"


class InvalidRangeError(S3Error):
    code = "InvalidRange"
    status = 416


class BadDigestError(S3Error):
    code = "BadDigest"


class InvalidDigestError(S3Error):
    code = "InvalidDigest"


class SHA256MismatchError(S3Error):
    code = "XAmzContentSHA256Mismatch"


class EntityTooLargeError(S3Error):
    code = "EntityTooLarge"


class IncompleteBodyError(S3Error):
    code = "IncompleteBody"


class MalformedXMLError(S3Error):
    code = "MalformedXML"

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "The XML you provided was not well-formed or did not validate against our "
            "published schema."
        )


class MethodNotAllowedError(S3Error):
    code = "MethodNotAllowed"
    status = 405


class NotImplementedS3Error(S3Error):
    code = "NotImplemented"
    status = 501


class NotModified(S3Error):
    """Not an error to S3 clients: a conditional GET whose answer is 304 with no body."""

    code = "NotModified"
    status = 304


def as_s3_error(error: SabioError) -> SabioError:
    """A platform `ValidationException` (a bad key, a key that clashes on disk) is S3's
    `InvalidArgument`; every other error keeps its code."""
    if isinstance(error, ValidationError):
        return InvalidArgumentError(error.message, **error.fields)
    return error


def error_xml(error: SabioError, resource: str, request_id: str) -> bytes:
    fields = "".join(
        f"<{name}>{escape(str(value))}</{name}>" for name, value in _wire_fields(error).items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"{fields}<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId>"
        "</Error>"
    ).encode()


def _wire_fields(error: SabioError) -> dict[str, object]:
    """Extra members of the error element: `bucket` -> `BucketName`, `part_number` ->
    `PartNumber`; a key given as a URI is shown as the bare key, as S3 does."""
    out: dict[str, object] = {}
    for name, value in error.fields.items():
        if name == "key" and isinstance(value, str) and value.startswith("s3://"):
            value = value.split("/", 3)[-1]
        tag = (
            "BucketName"
            if name == "bucket"
            else "".join(p[:1].upper() + p[1:] for p in name.split("_"))
        )
        out[tag] = value
    return out
