"""ListObjectsV2 and ListObjects: a page of keys and common prefixes, in key order.

A page stops after `max-keys` entries, keys and common prefixes counted alike; the next page
starts after the last entry, which is what NextContinuationToken (v2) or NextMarker (v1)
carries. Keys below a common prefix that was already returned are skipped."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from sabio.api.s3.errors import InvalidArgumentError
from sabio.api.s3.names import existing_bucket
from sabio.api.s3.wire import S3Request, respond_xml
from sabio.api.s3.xml import OWNER, document, element, iso_time, optional
from sabio.artifacts.store import ObjectInfo
from sabio.artifacts.uri import ObjectUri
from sabio.errors import ValidationError

MAX_KEYS = 1000


@dataclass
class Page:
    contents: list[ObjectInfo] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str = ""  # the last key or common prefix returned


def paginate(
    objects: Iterable[ObjectInfo], prefix: str, delimiter: str, marker: str, max_keys: int
) -> Page:
    page = Page()
    count = 0
    for info in objects:
        key = info.uri.key
        if key <= marker or not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        entry = key[: cut + len(delimiter)] if cut >= 0 else key
        if cut >= 0 and (entry == marker or (page.prefixes and page.prefixes[-1] == entry)):
            continue
        if count >= max_keys:
            page.truncated = True
            break
        count += 1
        page.last = entry
        if cut >= 0:
            page.prefixes.append(entry)
        else:
            page.contents.append(info)
    return page


async def list_objects(request: S3Request) -> None:
    """GET /bucket (v1, `marker`) and GET /bucket?list-type=2 (v2, `continuation-token`)."""
    v2 = request.query.get("list-type") == "2"
    query = request.query
    await existing_bucket(request)
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise InvalidArgumentError(
            "Invalid Encoding Method specified in Request", argument_name="encoding-type"
        )
    max_keys = _max_keys(query.get("max-keys"))
    token = query.get("continuation-token") if v2 else None
    start_after = query.get("start-after", "") if v2 else query.get("marker", "")
    marker = _decode_token(token) if token is not None else start_after
    page = await request.run(_page, request, prefix, delimiter, marker, max_keys)

    def name(value: str) -> str:
        return quote(value, safe="/") if encoding == "url" else value

    owner = OWNER if (not v2 or query.get("fetch-owner") == "true") else ""
    parts = [element("Name", request.bucket), element("Prefix", name(prefix))]
    if v2:
        parts += [
            optional("ContinuationToken", token),
            optional("StartAfter", name(start_after)),
            element("KeyCount", len(page.contents) + len(page.prefixes)),
        ]
        if page.truncated:
            parts.append(element("NextContinuationToken", _encode_token(page.last)))
    else:
        parts.append(element("Marker", name(start_after)))
        if page.truncated and delimiter:
            parts.append(element("NextMarker", name(page.last)))
    parts += [
        element("MaxKeys", max_keys),
        optional("Delimiter", name(delimiter)),
        optional("EncodingType", encoding),
        element("IsTruncated", page.truncated),
    ]
    parts.extend(_contents(page.contents, name, owner))
    parts.extend(
        f"<CommonPrefixes>{element('Prefix', name(p))}</CommonPrefixes>" for p in page.prefixes
    )
    await respond_xml(request, document("ListBucketResult", parts))


def _page(request: S3Request, prefix: str, delimiter: str, marker: str, max_keys: int) -> Page:
    if max_keys == 0:
        return Page()
    try:
        objects = request.store.list(ObjectUri("s3", request.bucket, prefix), marker)
        return paginate(objects, prefix, delimiter, marker, max_keys)
    except ValidationError:  # a prefix no key can have (`../`): nothing matches it
        return Page()


def _contents(contents: list[ObjectInfo], name: Callable[[str], str], owner: str) -> Iterator[str]:
    for info in contents:
        fields = [
            element("Key", name(info.uri.key)),
            element("LastModified", iso_time(info.modified)),
            element("ETag", f'"{info.etag}"'),
            element("Size", info.size),
            element("StorageClass", "STANDARD"),
            owner,
        ]
        yield f"<Contents>{''.join(fields)}</Contents>"


def _max_keys(value: str | None) -> int:
    if value is None or value == "":
        return MAX_KEYS
    if not value.isdigit():
        raise InvalidArgumentError(
            "Provided max-keys not an integer or within integer range", argument_name="max-keys"
        )
    return min(int(value), MAX_KEYS)


def _encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgumentError(
            "The continuation token provided is incorrect", argument_name="continuation-token"
        ) from None
