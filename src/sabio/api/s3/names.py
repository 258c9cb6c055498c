"""Checking the bucket and key a request names, before any body is read."""

from __future__ import annotations

from sabio.api.s3.errors import InvalidArgumentError, InvalidBucketNameError, KeyTooLongError
from sabio.api.s3.wire import S3Request
from sabio.artifacts.errors import no_such_bucket
from sabio.artifacts.store import BucketInfo
from sabio.artifacts.uri import MAX_KEY_BYTES, ObjectUri, valid_bucket
from sabio.errors import ValidationError


def check_bucket_name(name: str) -> None:
    if not valid_bucket(name):
        raise InvalidBucketNameError("The specified bucket is not valid.", bucket=name)


async def existing_bucket(request: S3Request, name: str | None = None) -> BucketInfo:
    """The bucket, or InvalidBucketName / NoSuchBucket."""
    name = request.bucket if name is None else name
    check_bucket_name(name)
    found: BucketInfo | None = await request.run(request.store.bucket, name)
    if found is None:
        raise no_such_bucket(name)
    return found


def checked_uri(request: S3Request, bucket: str | None = None, key: str | None = None) -> ObjectUri:
    """The object's URI, once its key is known to be one the store can hold and that stays
    inside its bucket; otherwise KeyTooLongError or InvalidArgument with the reason."""
    uri = ObjectUri(
        "s3", request.bucket if bucket is None else bucket, request.key if key is None else key
    )
    if len(uri.key.encode()) > MAX_KEY_BYTES:
        raise KeyTooLongError(
            "Your key is too long", size=len(uri.key.encode()), max_size_allowed=MAX_KEY_BYTES
        )
    try:
        request.store.validate_key(uri)
    except ValidationError as error:
        raise InvalidArgumentError(error.message, key=uri.key) from None
    return uri
