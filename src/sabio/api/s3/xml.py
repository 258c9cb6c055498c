"""S3's XML: writing responses (plain string building, which is fast and exact) and reading
the few request bodies S3 has (DeleteObjects, CompleteMultipartUpload, CreateBucket)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from email.utils import formatdate
from xml.sax.saxutils import escape

from sabio.api.s3.errors import MalformedXMLError

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
OWNER = f"<Owner><ID>{OWNER_ID}</ID><DisplayName>sabio</DisplayName></Owner>"
INITIATOR = OWNER.replace("Owner>", "Initiator>")


def element(name: str, value: object) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def optional(name: str, value: object) -> str:
    return "" if value is None or value == "" else element(name, value)


def document(root: str, parts: Iterable[str]) -> bytes:
    body = "".join(parts)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NAMESPACE}">{body}</{root}>'
    ).encode()


def iso_time(timestamp: float) -> str:
    """`2026-11-22T15:37:12.000Z`, the form S3 uses in XML."""
    millis = int(timestamp * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{millis:03d}Z"


def http_time(timestamp: float) -> str:
    """`Sun, 22 Nov 2026 15:37:12 GMT`, the form of Last-Modified."""
    return formatdate(timestamp, usegmt=True)


def parse(body: bytes, root: str) -> ET.Element:
    """Parse a small request body; documents that declare a DTD (and with it entities) are
    refused before the parser sees them."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise MalformedXMLError()
    try:
        tree = ET.fromstring(body)  # noqa: S314 - no DTD can reach here (checked above)
    except ET.ParseError:
        raise MalformedXMLError() from None
    for node in tree.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    if tree.tag != root:
        raise MalformedXMLError()
    return tree


def text(node: ET.Element, name: str) -> str | None:
    child = node.find(name)
    return None if child is None else (child.text or "")
