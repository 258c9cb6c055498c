"""What an environment must contain, and how one requirement line is understood.

The spec is a plain frozen value so that equal specs hash to the same cached environment; the line
classifier is shared by the requirements-file parser, the server check and the cache key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from packaging.requirements import InvalidRequirement, Requirement

from sabio.errors import SabioError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")


class EnvironmentBuildError(SabioError):
    """The environment user code asked for cannot be built; the message says what to change."""

    code = "EnvironmentBuildFailed"
    status = 400


@dataclass(frozen=True)
class EnvironmentSpec:
    """The packages user code needs, on top of what the server provides.

    `requirements` holds requirement lines (names with specifiers and markers, URLs or absolute
    local paths); the index fields are the `--index-url`/`--extra-index-url`/`--find-links`
    lines of a requirements file. New fields must get a default and appear in `to_json`, which
    feeds the cache key.
    """

    requirements: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "requirements": list(self.requirements),
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "find_links": list(self.find_links),
        }

    def combined_with(self, other: EnvironmentSpec) -> EnvironmentSpec:
        """Both specs' requirements and index lines (e.g. an image's packages plus a model's)."""
        return EnvironmentSpec(
            requirements=(*self.requirements, *other.requirements),
            index_url=other.index_url or self.index_url,
            extra_index_urls=(*self.extra_index_urls, *other.extra_index_urls),
            find_links=(*self.find_links, *other.find_links),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvironmentSpec:
        return cls(
            requirements=tuple(data.get("requirements") or ()),
            index_url=data.get("index_url"),
            extra_index_urls=tuple(data.get("extra_index_urls") or ()),
            find_links=tuple(data.get("find_links") or ()),
        )


@dataclass(frozen=True)
class ParsedLine:
    """One requirement line: its PEP 508 form (if any) and the local file/dir it installs from."""

    requirement: Requirement | None = None
    local_path: Path | None = None

    @property
    def from_index(self) -> bool:
        """Whether the line names a package resolved from an index (no URL, no path)."""
        return self.requirement is not None and self.requirement.url is None


def is_url(text: str) -> bool:
    return _URL.match(text) is not None


def file_url_path(url: str) -> Path | None:
    """The local path of a `file:` URL, None for any other scheme."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    return Path(url2pathname(parts.path))


def looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or "/" in text or "\\" in text


def parse_line(line: str) -> ParsedLine:
    """Classify a requirement line the way pip does: URL, then PEP 508, then a path."""
    if is_url(line):
        return ParsedLine(local_path=file_url_path(line))
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        if looks_like_path(line):
            return ParsedLine(local_path=Path(line))
        raise EnvironmentBuildError(f"Invalid requirement {line!r}: {exc}") from exc
    if requirement.url is None:
        if requirement.name.lower().endswith(_ARCHIVE_SUFFIXES):
            return ParsedLine(local_path=Path(line))
        return ParsedLine(requirement=requirement)
    if is_url(requirement.url) or requirement.url.lower().startswith("file:"):
        return ParsedLine(requirement, file_url_path(requirement.url))
    return ParsedLine(requirement, Path(requirement.url))
