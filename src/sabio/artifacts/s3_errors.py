"""Turning botocore's failures into the artifact store's errors, so callers never see
`ClientError` and a backend's answer reads the same as the embedded store's."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from sabio.artifacts import errors
from sabio.artifacts.uri import ObjectUri
from sabio.errors import SabioError

_MISSING = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
_BY_CODE: dict[str, type[SabioError]] = {
    "NoSuchKey": errors.NoSuchKeyError,
    "NoSuchBucket": errors.NoSuchBucketError,
    "BucketNotEmpty": errors.BucketNotEmptyError,
    "BucketAlreadyOwnedByYou": errors.BucketAlreadyOwnedByYouError,
    "NoSuchUpload": errors.NoSuchUploadError,
    "InvalidPart": errors.InvalidPartError,
    "InvalidPartOrder": errors.InvalidPartOrderError,
    "EntityTooSmall": errors.EntityTooSmallError,
    "PreconditionFailed": errors.PreconditionFailedError,
}


def is_missing(error: BaseException) -> bool:
    return (
        isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in _MISSING
    )


def translate(
    error: BaseException,
    uri: ObjectUri | None = None,
    *,
    bucket: object = None,
    upload_id: object = None,
) -> BaseException:
    """The store error for a boto3 failure; anything that is not boto3's passes through."""
    if isinstance(error, SabioError):
        return error
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
        message = str(details.get("Message") or code)
        if code in ("404", "NotFound"):
            code = (
                "NoSuchUpload" if upload_id else "NoSuchKey" if uri and uri.key else "NoSuchBucket"
            )
        if code == "NoSuchKey" and uri is not None:
            return errors.no_such_key(uri)
        if code == "NoSuchBucket":
            return errors.no_such_bucket(str(bucket or (uri.bucket if uri else "")))
        if code == "NoSuchUpload":
            return errors.no_such_upload(str(upload_id or ""))
        kind = _BY_CODE.get(code)
        if kind is not None:
            return kind(message)
        unknown = SabioError(message)
        unknown.code = code or "InternalError"
        unknown.status = status
        return unknown
    if isinstance(error, BotoCoreError):
        return errors.StorageUnavailableError(f"The artifact store could not be reached: {error}")
    return error
