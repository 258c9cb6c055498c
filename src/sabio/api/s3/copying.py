"""CopyObject and UploadPartCopy: `x-amz-copy-source` names an object the gateway reads."""

from __future__ import annotations

import re
from urllib.parse import unquote

from sabio.api.s3.errors import InvalidArgumentError, InvalidRequestError
from sabio.api.s3.headers import check_conditions, metadata_from
from sabio.api.s3.multipart import part_number
from sabio.api.s3.names import checked_uri, existing_bucket
from sabio.api.s3.wire import S3Request, respond_xml
from sabio.api.s3.xml import document, element, iso_time
from sabio.artifacts.errors import no_such_key
from sabio.artifacts.store import ObjectInfo, ObjectReader, PartInfo, Writer
from sabio.artifacts.uri import ObjectUri

_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


async def copy_source(request: S3Request) -> ObjectUri:
    """`x-amz-copy-source: [/]bucket/key[?versionId=null]`, URL-encoded."""
    raw = request.headers["x-amz-copy-source"]
    path, _, query = raw.partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise InvalidArgumentError(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            argument_name="x-amz-copy-source",
        )
    if query and query not in ("versionId=null", "versionId="):
        raise InvalidArgumentError("Invalid version id specified")
    await existing_bucket(request, bucket)
    return checked_uri(request, bucket, key)


async def copy_object(request: S3Request) -> None:
    await existing_bucket(request)
    target = checked_uri(request)
    source = await copy_source(request)
    directive = request.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgumentError(
            "Unknown metadata directive.", argument_name="x-amz-metadata-directive"
        )
    info: ObjectInfo | None = await request.run(request.store.stat, source)
    if info is None:
        raise no_such_key(source)
    check_conditions(request.headers, info, copy_source=True)
    if source == target and directive == "COPY":
        raise InvalidRequestError(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes."
        )
    metadata = metadata_from(request) if directive == "REPLACE" else None
    copied: ObjectInfo = await request.run(request.store.copy, source, target, metadata)
    checksums = {k: v for k, v in copied.checksums.items() if "-" not in v}
    body = document(
        "CopyObjectResult",
        [
            element("ETag", f'"{copied.etag}"'),
            element("LastModified", iso_time(copied.modified)),
            *(element(f"Checksum{algorithm}", value) for algorithm, value in checksums.items()),
        ],
    )
    await respond_xml(request, body)


async def upload_part_copy(request: S3Request) -> None:
    await existing_bucket(request)
    uri = checked_uri(request)
    number = part_number(request)
    upload_id = request.query["uploadId"]
    await request.run(request.store.upload, uri, upload_id)
    source = await copy_source(request)
    reader: ObjectReader = await request.run(request.store.open_object, source)
    try:
        check_conditions(request.headers, reader.info, copy_source=True)
        start, stop = _copy_range(request.headers.get("x-amz-copy-source-range"), reader.info.size)
        writer = await request.run(request.store.open_part_write, uri, upload_id, number)
        part: PartInfo = await request.run(_copy, reader, writer, start, stop)
    finally:
        await request.run(reader.close)
    body = document(
        "CopyPartResult",
        [element("ETag", f'"{part.etag}"'), element("LastModified", iso_time(part.modified))],
    )
    await respond_xml(request, body)


def _copy_range(value: str | None, size: int) -> tuple[int, int]:
    if value is None:
        return 0, size
    match = _COPY_RANGE.match(value.strip())
    if match is None:
        raise InvalidArgumentError(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first "
            "and last are the zero-based offsets of the first and last bytes to copy",
            argument_name="x-amz-copy-source-range",
        )
    first, last = int(match[1]), int(match[2])
    if first > last or last >= size:
        raise InvalidArgumentError(
            f"Range specified is not valid for source object of size: {size}",
            argument_name="x-amz-copy-source-range",
        )
    return first, last + 1


def _copy(reader: ObjectReader, writer: Writer[PartInfo], start: int, stop: int) -> PartInfo:
    with writer:
        for chunk in reader.chunks(start, stop):
            writer.write(chunk)
        return writer.commit()
