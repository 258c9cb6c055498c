"""Errors of the artifact stores, carrying the S3 error code a client of S3 would see.

Every backend raises these, so the S3 gateway can put them on the wire unchanged and callers
elsewhere in the platform can catch one type whatever the backend."""

from __future__ import annotations

from sabio.errors import SabioError


class NoSuchBucketError(SabioError):
    code = "NoSuchBucket"
    status = 404


class NoSuchKeyError(SabioError, FileNotFoundError):
    """Also a FileNotFoundError, which is what `open_read` has always raised for a miss."""

    code = "NoSuchKey"
    status = 404


class BucketNotEmptyError(SabioError):
    code = "BucketNotEmpty"
    status = 409


class BucketAlreadyOwnedByYouError(SabioError):
    code = "BucketAlreadyOwnedByYou"
    status = 409


class NoSuchUploadError(SabioError):
    code = "NoSuchUpload"
    status = 404


class InvalidPartError(SabioError):
    code = "InvalidPart"
    status = 400


class InvalidPartOrderError(SabioError):
    code = "InvalidPartOrder"
    status = 400


class EntityTooSmallError(SabioError):
    code = "EntityTooSmall"
    status = 400


class PreconditionFailedError(SabioError):
    code = "PreconditionFailed"
    status = 412


class StorageUnavailableError(SabioError):
    """The backing object store failed in a way the client cannot fix (503: retried)."""

    code = "ServiceUnavailable"
    status = 503


def no_such_key(uri: object) -> NoSuchKeyError:
    return NoSuchKeyError("The specified key does not exist.", key=str(uri))


def no_such_bucket(name: str) -> NoSuchBucketError:
    return NoSuchBucketError("The specified bucket does not exist.", bucket=name)


def no_such_upload(upload_id: str) -> NoSuchUploadError:
    return NoSuchUploadError(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        upload_id=upload_id,
    )
