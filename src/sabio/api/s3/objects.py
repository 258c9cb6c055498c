"""PutObject, GetObject, HeadObject, DeleteObject and DeleteObjects."""

from __future__ import annotations

from sabio.api.s3.bodies import UploadBody, read_small, send_object
from sabio.api.s3.checksums import header_name
from sabio.api.s3.errors import (
    InvalidArgumentError,
    MalformedXMLError,
    NotModified,
    as_s3_error,
)
from sabio.api.s3.headers import (
    byte_range,
    check_conditions,
    metadata_from,
    object_headers,
    part_range,
)
from sabio.api.s3.names import checked_uri, existing_bucket
from sabio.api.s3.wire import S3Request, respond, respond_xml
from sabio.api.s3.xml import document, element, http_time, parse, text
from sabio.artifacts.errors import PreconditionFailedError
from sabio.artifacts.store import ArtifactStore, ObjectInfo, ObjectReader
from sabio.artifacts.uri import ObjectUri
from sabio.errors import SabioError

_MAX_DELETE_BODY = 2 * 1024 * 1024
_MAX_DELETE_KEYS = 1000


def check_version(request: S3Request) -> None:
    """The store keeps one version per key, which S3 calls the `null` version."""
    version = request.query.get("versionId")
    if version is not None and version != "null":
        raise InvalidArgumentError("Invalid version id specified", argument_name="versionId")


def checksum_headers(checksums: dict[str, str]) -> list[tuple[str, str]]:
    return [(header_name(algorithm), value) for algorithm, value in checksums.items()]


async def put_object(request: S3Request) -> None:
    await existing_bucket(request)
    uri = checked_uri(request)
    metadata = metadata_from(request)
    body = UploadBody(request)  # checks sizes and checksum headers before a byte is stored
    store = request.store
    if (
        request.headers.get("if-none-match", "").strip() == "*"
        and await request.run(store.stat, uri) is not None
    ):
        raise PreconditionFailedError(
            "At least one of the pre-conditions you specified did not hold",
            condition="If-None-Match",
        )
    writer = await request.run(store.open_write, uri, metadata)
    try:
        checksums = await body.pump(writer.write)
        info: ObjectInfo = await request.run(writer.commit, checksums)
    except BaseException:
        await request.run(writer.abort)
        raise
    await respond(request, 200, [("etag", f'"{info.etag}"'), *checksum_headers(checksums)])


async def get_object(request: S3Request) -> None:
    """GetObject and HeadObject: conditions, a range or a part, then the bytes streamed."""
    check_version(request)
    await existing_bucket(request)
    uri = checked_uri(request)
    reader: ObjectReader = await request.run(request.store.open_object, uri)
    try:
        info = reader.info
        try:
            check_conditions(request.headers, info)
        except NotModified:
            headers = [("etag", f'"{info.etag}"'), ("last-modified", http_time(info.modified))]
            await respond(request, 304, headers)
            return
        part = part_range(request, info)
        span = part or byte_range(request.headers.get("range"), info.size)
        headers = object_headers(request, info, whole=span is None)
        if span is None:
            start, stop, status = 0, info.size, 200
        else:
            start, stop = span
            status = 206 if part is None or info.part_sizes else 200
            if status == 206:
                headers.append(("content-range", f"bytes {start}-{stop - 1}/{info.size}"))
        await send_object(request, status, headers, reader, start, stop)
    finally:
        await request.run(reader.close)


async def delete_object(request: S3Request) -> None:
    check_version(request)
    await existing_bucket(request)
    uri = checked_uri(request)
    await request.run(request.store.delete, uri)
    await respond(request, 204)


async def delete_objects(request: S3Request) -> None:
    """POST /bucket?delete: up to 1000 keys; a missing key counts as deleted, as in S3."""
    await existing_bucket(request)
    body = await read_small(request, _MAX_DELETE_BODY)
    tree = parse(body, "Delete")
    quiet = (text(tree, "Quiet") or "").strip().lower() == "true"
    entries = tree.findall("Object")
    if not entries or len(entries) > _MAX_DELETE_KEYS:
        raise MalformedXMLError()
    targets: list[ObjectUri | SabioError] = []
    keys: list[str] = []
    for entry in entries:
        key = text(entry, "Key")
        if key is None:
            raise MalformedXMLError()
        keys.append(key)
        version = text(entry, "VersionId")
        try:
            if version not in (None, "", "null"):
                raise InvalidArgumentError("Invalid version id specified")
            targets.append(checked_uri(request, key=key))
        except SabioError as error:
            targets.append(error)
    results = await request.run(_delete_all, request.store, targets)
    parts = []
    for key, result in zip(keys, results, strict=True):
        if result is None:
            if not quiet:
                parts.append(f"<Deleted>{element('Key', key)}</Deleted>")
        else:
            parts.append(
                f"<Error>{element('Key', key)}{element('Code', result.code)}"
                f"{element('Message', result.message)}</Error>"
            )
    await respond_xml(request, document("DeleteResult", parts))


def _delete_all(
    store: ArtifactStore, targets: list[ObjectUri | SabioError]
) -> list[SabioError | None]:
    results: list[SabioError | None] = []
    for target in targets:
        if isinstance(target, SabioError):
            results.append(target)
            continue
        try:
            store.delete(target)
            results.append(None)
        except SabioError as error:
            results.append(as_s3_error(error))
    return results
