"""The embedded store's multipart uploads on disk: parts placed where they belong so that
completing is a rename, the fallback copy, and the check of parts that outlived a reboot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sabio.artifacts.errors import InvalidPartError, NoSuchUploadError
from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.store import MIN_PART_BYTES
from sabio.artifacts.uri import ObjectUri
from sabio.errors import ValidationError

URI = ObjectUri("s3", "bucket", "dir/object.bin")
PARTS = [os.urandom(MIN_PART_BYTES), os.urandom(MIN_PART_BYTES), b"last"]


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    store = LocalArtifactStore(tmp_path / "artifacts")
    store.create_bucket("bucket")
    return store


def upload_parts(
    store: LocalArtifactStore, upload: str, sized: bool = True
) -> list[tuple[int, str]]:
    listed = []
    for number, data in enumerate(PARTS, start=1):
        with store.open_part_write(URI, upload, number, len(data) if sized else None) as writer:
            writer.write(data)
            listed.append((number, writer.commit().etag))
    return listed


def upload_dir(store: LocalArtifactStore, upload: str) -> Path:
    return store.root / ".sabio" / "uploads" / "bucket" / upload


def test_regular_uploads_complete_without_copying(store: LocalArtifactStore) -> None:
    upload = store.create_multipart_upload(URI)
    parts = upload_parts(store, upload)
    data_file = upload_dir(store, upload) / "data"
    inode = data_file.stat().st_ino
    info = store.complete_multipart_upload(URI, upload, parts)
    on_disk = store.path_for(URI)
    assert on_disk.stat().st_ino == inode  # renamed into place, not copied
    assert on_disk.read_bytes() == b"".join(PARTS)
    assert info.part_sizes == tuple(len(p) for p in PARTS)
    assert not upload_dir(store, upload).exists()
    assert [p.name for p in on_disk.parent.iterdir()] == ["object.bin"]


def test_parts_without_sizes_are_joined_by_copying(store: LocalArtifactStore) -> None:
    upload = store.create_multipart_upload(URI)
    parts = upload_parts(store, upload, sized=False)
    assert sorted(p.name for p in upload_dir(store, upload).glob("*.part")) == [
        "1.part",
        "2.part",
        "3.part",
    ]
    store.complete_multipart_upload(URI, upload, parts)
    assert store.path_for(URI).read_bytes() == b"".join(PARTS)


def test_a_part_must_match_its_declared_size(store: LocalArtifactStore) -> None:
    upload = store.create_multipart_upload(URI)
    with store.open_part_write(URI, upload, 1, 4) as writer, pytest.raises(ValidationError):
        writer.write(b"12345")
    with store.open_part_write(URI, upload, 1, 4) as writer:
        writer.write(b"12")
        with pytest.raises(ValidationError, match="shorter"):
            writer.commit()
    assert store.list_parts(URI, upload) == []


def test_parts_written_before_a_reboot_are_checked(store: LocalArtifactStore) -> None:
    upload = store.create_multipart_upload(URI)
    parts = upload_parts(store, upload)
    directory = upload_dir(store, upload)
    for record in directory.glob("[0-9]*.json"):
        data = json.loads(record.read_text())
        record.write_text(json.dumps({**data, "boot": "an-earlier-boot"}))
    with (directory / "data").open("r+b") as handle:  # what a lost page cache leaves behind
        handle.seek(10)
        handle.write(b"\0" * 100)
    with pytest.raises(InvalidPartError):
        store.complete_multipart_upload(URI, upload, parts)
    assert store.stat(URI) is None
    with store.open_part_write(URI, upload, 1, len(PARTS[0])) as writer:  # sent again
        writer.write(PARTS[0])
        parts[0] = (1, writer.commit().etag)
    store.complete_multipart_upload(URI, upload, parts)
    assert store.path_for(URI).read_bytes() == b"".join(PARTS)


def test_uploads_started_before_a_cutoff_are_aborted(store: LocalArtifactStore) -> None:
    old = store.create_multipart_upload(URI)
    upload_parts(store, old)
    crashed = upload_dir(store, "0" * 32)  # a create cut off before its description
    crashed.mkdir()
    os.utime(crashed, (0, 0))
    cutoff = json.loads((upload_dir(store, old) / "upload.json").read_text())["initiated"] + 0.001
    young = store.create_multipart_upload(ObjectUri("s3", "bucket", "young.bin"))
    description = upload_dir(store, young) / "upload.json"
    description.write_text(
        json.dumps({**json.loads(description.read_text()), "initiated": cutoff + 60})
    )

    assert store.abort_uploads_started_before(cutoff) == 2
    assert not upload_dir(store, old).exists() and not crashed.exists()
    assert [u.upload_id for u in store.list_multipart_uploads("bucket")] == [young]
    with pytest.raises(NoSuchUploadError):
        store.list_parts(URI, old)
