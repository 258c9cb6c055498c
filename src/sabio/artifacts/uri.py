"""Parsing and checking `s3://bucket/key` addresses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sabio.errors import ValidationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class ObjectUri:
    """A bucket and a key (the key may be empty or a prefix ending in `/`)."""

    scheme: str
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    def child(self, name: str) -> ObjectUri:
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return parse(f"{self.scheme}://{self.bucket}/{base}{name}")


def parse(uri: str) -> ObjectUri:
    """Parse and check a URI; a key that could leave its bucket is rejected."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme:
        raise ValidationError(f"'{uri}' is not a valid URI; expected s3://bucket/key.")
    bucket, _, key = rest.partition("/")
    if not valid_bucket(bucket):
        raise ValidationError(f"'{uri}' does not name a valid bucket.")
    check_key(key, uri)
    return ObjectUri(scheme.lower(), bucket, key)


def valid_bucket(name: str) -> bool:
    """S3's rules for bucket names: 3 to 63 of `a-z0-9.-`, a letter or digit at each end, no
    `..` (and so never a name like `.sabio` that a store uses for itself)."""
    return bool(_BUCKET.match(name)) and ".." not in name


def check_bucket(name: str) -> None:
    if not valid_bucket(name):
        raise ValidationError(f"'{name}' is not a valid bucket name.")


def check_key(key: str, uri: str) -> None:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValidationError(f"The key of '{uri}' is longer than {MAX_KEY_BYTES} bytes.")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValidationError(f"The key of '{uri}' must be a relative path inside its bucket.")
    if any(part in (".", "..") for part in key.split("/")):
        raise ValidationError(f"The key of '{uri}' must not contain '.' or '..' path segments.")


def require_s3(uri: str, where: str) -> ObjectUri:
    """A user-supplied location: an `s3://` URI that stays inside its bucket."""
    if not uri.lower().startswith("s3://"):
        raise ValidationError(f"{where} must be an s3:// URI, not '{uri}'.")
    return parse(uri)
