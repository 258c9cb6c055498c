"""Object headers: metadata in (PutObject), metadata out (GetObject, HeadObject), conditional
requests and byte ranges, by S3's rules."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from sabio.api.s3.checksums import header_name
from sabio.api.s3.errors import InvalidArgumentError, InvalidRangeError, NotModified, S3Error
from sabio.api.s3.wire import S3Request
from sabio.api.s3.xml import http_time
from sabio.artifacts.errors import PreconditionFailedError
from sabio.artifacts.store import ObjectInfo, ObjectMetadata, normalize_etag

_MAX_USER_METADATA = 2048
_STANDARD = (
    ("content_type", "content-type"),
    ("content_disposition", "content-disposition"),
    ("content_language", "content-language"),
    ("cache_control", "cache-control"),
    ("expires", "expires"),
)
_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


class MetadataTooLargeError(S3Error):
    code = "MetadataTooLarge"


class InvalidPartNumberError(S3Error):
    code = "InvalidPartNumber"
    status = 416


def metadata_from(request: S3Request) -> ObjectMetadata:
    """What a PutObject, CopyObject (REPLACE) or CreateMultipartUpload asks to keep."""
    values = {name: request.header_text(header) for name, header in _STANDARD}
    encodings = [
        e.strip()
        for e in request.headers.get("content-encoding", "").split(",")
        if e.strip() and e.strip().lower() != "aws-chunked"
    ]
    user = {
        name[len("x-amz-meta-") :]: request.header_text(name) or ""
        for name in request.headers
        if name.startswith("x-amz-meta-")
    }
    if sum(len(k) + len(v.encode()) for k, v in user.items()) > _MAX_USER_METADATA:
        raise MetadataTooLargeError(
            "Your metadata headers exceed the maximum allowed metadata size.",
            max_size_allowed=_MAX_USER_METADATA,
        )
    return ObjectMetadata(
        **{k: v for k, v in values.items() if v},
        content_encoding=",".join(encodings) or None,
        user=user,
    )


def object_headers(request: S3Request, info: ObjectInfo, *, whole: bool) -> list[tuple[str, str]]:
    """The headers of a GetObject or HeadObject answer (`whole`: not a range or part)."""
    metadata = info.metadata
    headers = [
        ("etag", f'"{info.etag}"'),
        ("last-modified", http_time(info.modified)),
        ("accept-ranges", "bytes"),
        ("content-type", metadata.content_type or "binary/octet-stream"),
    ]
    for name, header in _STANDARD[1:]:
        value = getattr(metadata, name)
        if value:
            headers.append((header, value))
    if metadata.content_encoding:
        headers.append(("content-encoding", metadata.content_encoding))
    headers.extend((f"x-amz-meta-{k}", v) for k, v in metadata.user.items())
    if info.part_sizes and "partNumber" in request.query:
        headers.append(("x-amz-mp-parts-count", str(len(info.part_sizes))))
    if whole and request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        for algorithm, value in info.checksums.items():
            headers.append((header_name(algorithm), value))
        if info.checksums:
            composite = any("-" in v for v in info.checksums.values())
            headers.append(("x-amz-checksum-type", "COMPOSITE" if composite else "FULL_OBJECT"))
    overrides = {
        header: value for param, header in _OVERRIDES.items() if (value := request.query.get(param))
    }
    if overrides:
        headers = [(k, v) for k, v in headers if k not in overrides] + list(overrides.items())
    return headers


def _time(value: str | None) -> float | None:
    """An HTTP date; one that does not parse is ignored, as S3 ignores it."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _matches(header: str, etag: str) -> bool:
    return any(v.strip() == "*" or normalize_etag(v) == etag for v in header.split(","))


def check_conditions(
    headers: Mapping[str, str], info: ObjectInfo, *, copy_source: bool = False
) -> None:
    """RFC 7232 as S3 applies it: If-Match beats If-Unmodified-Since, If-None-Match beats
    If-Modified-Since. A failed GET condition is 304 (NotModified) or 412; for a copy source
    every failure is 412."""
    prefix = "x-amz-copy-source-" if copy_source else ""
    modified = int(info.modified)  # HTTP dates have whole seconds
    if_match = headers.get(f"{prefix}if-match")
    if if_match is not None:
        if not _matches(if_match, info.etag):
            raise PreconditionFailedError(
                "At least one of the pre-conditions you specified did not hold",
                condition=f"{prefix}If-Match",
            )
    else:
        since = _time(headers.get(f"{prefix}if-unmodified-since"))
        if since is not None and modified > since:
            raise PreconditionFailedError(
                "At least one of the pre-conditions you specified did not hold",
                condition=f"{prefix}If-Unmodified-Since",
            )
    if_none_match = headers.get(f"{prefix}if-none-match")
    failed = None
    if if_none_match is not None:
        if _matches(if_none_match, info.etag):
            failed = f"{prefix}If-None-Match"
    else:
        since = _time(headers.get(f"{prefix}if-modified-since"))
        if since is not None and modified <= since:
            failed = f"{prefix}If-Modified-Since"
    if failed is not None:
        if copy_source:
            raise PreconditionFailedError(
                "At least one of the pre-conditions you specified did not hold", condition=failed
            )
        raise NotModified("Not Modified")


def byte_range(value: str | None, size: int) -> tuple[int, int] | None:
    """The [start, stop) of a `Range: bytes=...` header; None for the whole object (no header,
    or one S3 ignores: another unit, several ranges, bad syntax). Unsatisfiable: InvalidRange."""
    if not value:
        return None
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            count = int(last)
            start, stop = max(size - count, 0), size
            if count <= 0:
                start = size
        else:
            start = int(first)
            stop = min(int(last) + 1, size) if last else size
            if last and int(last) < start:
                return None
    except ValueError:
        return None
    if start >= size:
        raise InvalidRangeError(
            "The requested range is not satisfiable", range_requested=value, actual_object_size=size
        )
    return start, stop


def part_range(request: S3Request, info: ObjectInfo) -> tuple[int, int] | None:
    """The byte range of `?partNumber=N` (a whole single-part object is its part 1)."""
    value = request.query.get("partNumber")
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 10000:
        raise InvalidArgumentError("Part number must be an integer between 1 and 10000, inclusive")
    number = int(value)
    sizes = info.part_sizes or (info.size,)
    if number > len(sizes):
        raise InvalidPartNumberError(
            "The requested partnumber is not satisfiable", part_number=number
        )
    start = sum(sizes[: number - 1])
    return start, start + sizes[number - 1]
