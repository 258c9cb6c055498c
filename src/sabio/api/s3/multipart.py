"""Multipart uploads: create, upload parts, complete, abort, and their listings.

When the upload names a checksum algorithm (botocore's CRC32 by default), every part's
checksum is kept, checked against the ones listed at completion, and combined into S3's
composite checksum of the object (`<checksum of the part checksums>-<count>`)."""

from __future__ import annotations

from sabio.api.s3.bodies import UploadBody, read_small
from sabio.api.s3.checksums import ALGORITHMS, composite, requested_algorithm
from sabio.api.s3.errors import InvalidArgumentError, MalformedXMLError, NotImplementedS3Error
from sabio.api.s3.headers import metadata_from
from sabio.api.s3.names import checked_uri, existing_bucket
from sabio.api.s3.objects import checksum_headers
from sabio.api.s3.wire import S3Request, respond, respond_xml
from sabio.api.s3.xml import INITIATOR, OWNER, document, element, iso_time, optional, parse, text
from sabio.artifacts.errors import InvalidPartError
from sabio.artifacts.store import MAX_PARTS, ObjectInfo, PartInfo, UploadInfo

_MAX_COMPLETE_BODY = 8 * 1024 * 1024  # 10000 parts with checksums fit easily


def part_number(request: S3Request) -> int:
    value = request.query.get("partNumber", "")
    if not value.isdigit() or not 1 <= int(value) <= MAX_PARTS:
        raise InvalidArgumentError(
            f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
            argument_name="partNumber",
            argument_value=value,
        )
    return int(value)


def _int(request: S3Request, name: str, default: int, maximum: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise InvalidArgumentError(f"Provided {name} not an integer or within integer range")
    return min(int(value), maximum)


async def create_multipart_upload(request: S3Request) -> None:
    await existing_bucket(request)
    uri = checked_uri(request)
    metadata = metadata_from(request)
    algorithm = requested_algorithm(request.headers)
    if request.headers.get("x-amz-checksum-type", "COMPOSITE").upper() != "COMPOSITE":
        raise NotImplementedS3Error(
            "Sabio keeps composite checksums of multipart uploads; FULL_OBJECT is not "
            "implemented. Leave ChecksumType unset."
        )
    upload_id: str = await request.run(
        request.store.create_multipart_upload, uri, metadata, algorithm
    )
    headers = []
    if algorithm:
        headers = [("x-amz-checksum-algorithm", algorithm), ("x-amz-checksum-type", "COMPOSITE")]
    body = document(
        "InitiateMultipartUploadResult",
        [element("Bucket", uri.bucket), element("Key", uri.key), element("UploadId", upload_id)],
    )
    await respond_xml(request, body, headers=headers)


async def upload_part(request: S3Request) -> None:
    await existing_bucket(request)
    uri = checked_uri(request)
    number = part_number(request)
    upload: UploadInfo = await request.run(request.store.upload, uri, request.query["uploadId"])
    body = UploadBody(request, checksum_algorithm=upload.checksum_algorithm)
    writer = await request.run(
        request.store.open_part_write, uri, upload.upload_id, number, body.size
    )
    try:
        checksums = await body.pump(writer.write)
        part: PartInfo = await request.run(writer.commit, checksums)
    except BaseException:
        await request.run(writer.abort)
        raise
    await respond(request, 200, [("etag", f'"{part.etag}"'), *checksum_headers(checksums)])


async def complete_multipart_upload(request: S3Request) -> None:
    await existing_bucket(request)
    uri = checked_uri(request)
    upload: UploadInfo = await request.run(request.store.upload, uri, request.query["uploadId"])
    tree = parse(await read_small(request, _MAX_COMPLETE_BODY), "CompleteMultipartUpload")
    listed: list[tuple[int, str, dict[str, str]]] = []
    for node in tree.findall("Part"):
        number_text, etag = text(node, "PartNumber"), text(node, "ETag")
        if number_text is None or etag is None or not number_text.strip().isdigit():
            raise MalformedXMLError()
        sums = {a: v for a in ALGORITHMS if (v := text(node, f"Checksum{a}"))}
        listed.append((int(number_text), etag, sums))
    if not listed:
        raise MalformedXMLError("You must specify at least one part")
    stored = {
        p.number: p for p in await request.run(request.store.list_parts, uri, upload.upload_id)
    }
    for number, _, sums in listed:
        part = stored.get(number)
        if part is not None and any(part.checksums.get(a) != v for a, v in sums.items()):
            raise InvalidPartError(
                "One or more of the specified parts could not be found. The part may not have "
                "been uploaded, or the specified entity tag may not match the part's entity tag.",
                part_number=number,
            )
    checksums: dict[str, str] = {}
    algorithm = upload.checksum_algorithm
    values = [
        stored[n].checksums.get(algorithm or "") if n in stored else None for n, _, _ in listed
    ]
    if algorithm and all(values):
        checksums[algorithm] = composite(algorithm, [v for v in values if v])
    info: ObjectInfo = await request.run(
        request.store.complete_multipart_upload,
        uri,
        upload.upload_id,
        [(n, etag) for n, etag, _ in listed],
        checksums,
    )
    host = request.headers.get("host", "localhost")
    parts = [
        element("Location", f"http://{host}/{uri.bucket}/{uri.key}"),
        element("Bucket", uri.bucket),
        element("Key", uri.key),
        element("ETag", f'"{info.etag}"'),
        *(element(f"Checksum{a}", v) for a, v in checksums.items()),
    ]
    if checksums:
        parts.append(element("ChecksumType", "COMPOSITE"))
    await respond_xml(request, document("CompleteMultipartUploadResult", parts))


async def abort_multipart_upload(request: S3Request) -> None:
    await existing_bucket(request)
    uri = checked_uri(request)
    await request.run(request.store.abort_multipart_upload, uri, request.query["uploadId"])
    await respond(request, 204)


async def list_parts(request: S3Request) -> None:
    await existing_bucket(request)
    uri = checked_uri(request)
    upload_id = request.query["uploadId"]
    upload: UploadInfo = await request.run(request.store.upload, uri, upload_id)
    limit = _int(request, "max-parts", 1000, 1000)
    marker = _int(request, "part-number-marker", 0, MAX_PARTS)
    parts = [
        p for p in await request.run(request.store.list_parts, uri, upload_id) if p.number > marker
    ]
    page, truncated = parts[:limit], len(parts) > limit
    body = [
        element("Bucket", uri.bucket),
        element("Key", uri.key),
        element("UploadId", upload_id),
        element("PartNumberMarker", marker),
        element("NextPartNumberMarker", page[-1].number if page else marker),
        element("MaxParts", limit),
        element("IsTruncated", truncated),
        INITIATOR,
        OWNER,
        element("StorageClass", "STANDARD"),
        optional("ChecksumAlgorithm", upload.checksum_algorithm),
    ]
    for part in page:
        fields = [
            element("PartNumber", part.number),
            element("LastModified", iso_time(part.modified)),
            element("ETag", f'"{part.etag}"'),
            element("Size", part.size),
            *(element(f"Checksum{a}", v) for a, v in part.checksums.items()),
        ]
        body.append(f"<Part>{''.join(fields)}</Part>")
    await respond_xml(request, document("ListPartsResult", body))


async def list_multipart_uploads(request: S3Request) -> None:
    await existing_bucket(request)
    prefix = request.query.get("prefix", "")
    key_marker = request.query.get("key-marker", "")
    id_marker = request.query.get("upload-id-marker", "")
    limit = _int(request, "max-uploads", 1000, 1000)
    uploads = await request.run(request.store.list_multipart_uploads, request.bucket, prefix)
    after = [
        u
        for u in uploads
        if u.uri.key > key_marker
        or (u.uri.key == key_marker and id_marker and u.upload_id > id_marker)
    ]
    page, truncated = after[:limit], len(after) > limit
    body = [
        element("Bucket", request.bucket),
        element("KeyMarker", key_marker),
        element("UploadIdMarker", id_marker),
        element("NextKeyMarker", page[-1].uri.key if page else ""),
        element("NextUploadIdMarker", page[-1].upload_id if page else ""),
        element("Prefix", prefix),
        element("MaxUploads", limit),
        element("IsTruncated", truncated),
    ]
    for upload in page:
        body.append(
            f"<Upload>{element('Key', upload.uri.key)}{element('UploadId', upload.upload_id)}"
            f"{INITIATOR}{OWNER}"
            f"{element('StorageClass', 'STANDARD')}"
            f"{element('Initiated', iso_time(upload.initiated))}"
            f"{optional('ChecksumAlgorithm', upload.checksum_algorithm)}</Upload>"
        )
    await respond_xml(request, document("ListMultipartUploadsResult", body))
