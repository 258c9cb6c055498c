"""Folder markers: objects whose key ends in `/` (`data/`), as S3 consoles and `s3fs.mkdir`
create. A marker carries no data and its directory is implied by the keys under it, so code
that copies every object of a listing to local files skips markers: written as a file, a marker
would take the name of the directory its siblings need."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sabio.artifacts.store import ObjectInfo


def without_folder_markers(listing: Iterable[ObjectInfo]) -> Iterator[ObjectInfo]:
    """The listing's objects that hold data: every one but the folder markers."""
    return (info for info in listing if not info.uri.key.endswith("/"))
