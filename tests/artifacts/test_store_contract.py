"""The artifact store contract, run against every backend: the embedded store on a real file
system and the S3 backend against a real S3 server process (moto)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
import uuid

import pytest
from pydantic import SecretStr

from sabio.artifacts.errors import (
    BucketAlreadyOwnedByYouError,
    BucketNotEmptyError,
    EntityTooSmallError,
    InvalidPartError,
    InvalidPartOrderError,
    NoSuchBucketError,
    NoSuchKeyError,
    NoSuchUploadError,
    PreconditionFailedError,
)
from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.s3 import S3ArtifactStore, S3Connection
from sabio.artifacts.store import MIN_PART_BYTES, ArtifactStore, ObjectMetadata
from sabio.artifacts.uri import ObjectUri
from sabio.errors import ValidationError

PART = os.urandom(MIN_PART_BYTES)


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path_factory.mktemp("artifacts"))
    url = request.getfixturevalue("s3_server_url")
    connection = S3Connection(
        endpoint_url=url,
        region="us-east-1",
        access_key_id=SecretStr("testing"),
        secret_access_key=SecretStr("testing"),
        addressing_style="path",
    )
    return S3ArtifactStore(connection, part_bytes=MIN_PART_BYTES)


@pytest.fixture
def bucket(store: ArtifactStore) -> str:
    name = f"contract-{uuid.uuid4().hex[:12]}"
    store.create_bucket(name)
    return name


def uri(bucket: str, key: str) -> ObjectUri:
    return ObjectUri("s3", bucket, key)


def put(store: ArtifactStore, bucket: str, key: str, data: bytes, **metadata: object) -> None:
    store.write(uri(bucket, key), io.BytesIO(data), ObjectMetadata(**metadata))  # type: ignore[arg-type]


def read(
    store: ArtifactStore, bucket: str, key: str, start: int = 0, length: int | None = None
) -> bytes:
    with store.open_read(uri(bucket, key), start, length) as stream:
        return stream.read()


def keys(store: ArtifactStore, bucket: str, prefix: str = "", start_after: str = "") -> list[str]:
    return [i.uri.key for i in store.list(uri(bucket, prefix), start_after)]


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class Failing(io.RawIOBase):
    """Gives one chunk, then fails the way a dropped upload does."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionResetError("client went away")
        return b"partial" * 100


# Objects


def test_write_read_stat_and_overwrite(store: ArtifactStore, bucket: str) -> None:
    before = time.time() - 2
    info = store.write(uri(bucket, "dir/obj.bin"), io.BytesIO(b"first version"))
    assert (info.uri, info.size, info.etag) == (
        uri(bucket, "dir/obj.bin"),
        13,
        md5(b"first version"),
    )
    assert before <= info.modified <= time.time() + 2
    assert read(store, bucket, "dir/obj.bin") == b"first version"

    store.write(uri(bucket, "dir/obj.bin"), io.BytesIO(b"v2"))
    stat = store.stat(uri(bucket, "dir/obj.bin"))
    assert stat is not None
    assert (stat.size, stat.etag) == (2, md5(b"v2"))
    assert read(store, bucket, "dir/obj.bin") == b"v2"


def test_empty_and_multi_chunk_objects(store: ArtifactStore, bucket: str) -> None:
    put(store, bucket, "empty", b"")
    assert read(store, bucket, "empty") == b""
    assert store.stat(uri(bucket, "empty")).etag == md5(b"")  # type: ignore[union-attr]
    big = os.urandom(2 * MIN_PART_BYTES + 12345)  # the S3 backend streams it as a multipart upload
    info = store.write(uri(bucket, "big"), io.BytesIO(big))
    assert info.size == len(big)
    assert read(store, bucket, "big") == big


def test_metadata_is_kept_and_returned_by_stat(store: ArtifactStore, bucket: str) -> None:
    metadata = ObjectMetadata(
        content_type="text/csv",
        content_disposition='attachment; filename="data.csv"',
        content_encoding="gzip",
        content_language="en",
        cache_control="max-age=60",
        user={"owner": "team-a", "run-id": "42"},
    )
    store.write(uri(bucket, "data.csv"), io.BytesIO(b"a,b\n"), metadata)
    stat = store.stat(uri(bucket, "data.csv"))
    assert stat is not None
    assert stat.metadata == metadata
    with store.open_object(uri(bucket, "data.csv")) as reader:
        assert reader.info.metadata == metadata


def test_missing_objects(store: ArtifactStore, bucket: str) -> None:
    put(store, bucket, "dir/obj", b"x")
    for key in ("nope", "dir", "dir/"):
        assert store.stat(uri(bucket, key)) is None
        with pytest.raises(FileNotFoundError):
            store.open_read(uri(bucket, key))
        with pytest.raises(NoSuchKeyError):
            store.open_object(uri(bucket, key))
        assert store.delete(uri(bucket, key)) is False
    assert read(store, bucket, "dir/obj") == b"x"


def test_ranged_reads(store: ArtifactStore, bucket: str) -> None:
    data = bytes(range(256)) * 4
    put(store, bucket, "r", data)
    assert read(store, bucket, "r", 10, 5) == data[10:15]
    assert read(store, bucket, "r", 1000) == data[1000:]
    assert read(store, bucket, "r", 1000, 100) == data[1000:]
    assert read(store, bucket, "r", 5000, 10) == b""
    with store.open_object(uri(bucket, "r")) as reader:
        assert reader.info.size == len(data)
        assert b"".join(reader.chunks(100, 200)) == data[100:200]
        assert b"".join(reader.chunks(1020)) == data[1020:]
        assert b"".join(reader.chunks()) == data


def test_list_in_key_order_with_prefixes_and_start_after(store: ArtifactStore, bucket: str) -> None:
    for key in ["a/c/d", "ab", "a/b", "a-b", "b/x", "a.txt"]:
        put(store, bucket, key, key.encode())
    assert keys(store, bucket) == ["a-b", "a.txt", "a/b", "a/c/d", "ab", "b/x"]
    assert keys(store, bucket, "a/") == ["a/b", "a/c/d"]
    assert keys(store, bucket, "a/c") == ["a/c/d"]
    assert keys(store, bucket, "zzz/") == []
    assert keys(store, bucket, "", start_after="a/b") == ["a/c/d", "ab", "b/x"]
    assert keys(store, bucket, "a", start_after="a.txt") == ["a/b", "a/c/d", "ab"]
    infos = list(store.list(uri(bucket, "a/")))
    assert [(i.size, i.etag) for i in infos] == [(3, md5(b"a/b")), (5, md5(b"a/c/d"))]
    assert keys(store, f"missing-{uuid.uuid4().hex[:8]}") == []


def test_delete(store: ArtifactStore, bucket: str) -> None:
    put(store, bucket, "a/b/c", b"1")
    put(store, bucket, "keep", b"2")
    assert store.delete(uri(bucket, "a/b/c")) is True
    assert store.stat(uri(bucket, "a/b/c")) is None
    assert store.delete(uri(bucket, "a/b/c")) is False
    assert keys(store, bucket) == ["keep"]
    put(store, bucket, "a", b"a key where a prefix was")  # nothing of a/b/ is left behind
    assert keys(store, bucket) == ["a", "keep"]


def test_copy_keeps_or_replaces_metadata(store: ArtifactStore, bucket: str) -> None:
    put(store, bucket, "src", b"content", content_type="text/plain", user={"k": "v"})
    copied = store.copy(uri(bucket, "src"), uri(bucket, "dst/copy"))
    assert (copied.size, copied.etag) == (7, md5(b"content"))
    assert copied.metadata == ObjectMetadata(content_type="text/plain", user={"k": "v"})
    assert read(store, bucket, "dst/copy") == b"content"

    replaced = ObjectMetadata(content_type="application/json", user={"new": "1"})
    store.copy(uri(bucket, "src"), uri(bucket, "other"), replaced)
    assert store.stat(uri(bucket, "other")).metadata == replaced  # type: ignore[union-attr]

    store.copy(uri(bucket, "src"), uri(bucket, "src"), replaced)  # new metadata in place
    stat = store.stat(uri(bucket, "src"))
    assert stat is not None
    assert (stat.metadata, stat.etag) == (replaced, md5(b"content"))
    assert read(store, bucket, "src") == b"content"

    with pytest.raises(NoSuchKeyError):
        store.copy(uri(bucket, "missing"), uri(bucket, "x"))


def test_copy_between_buckets(store: ArtifactStore, bucket: str) -> None:
    other = f"contract-{uuid.uuid4().hex[:12]}"
    store.create_bucket(other)
    put(store, bucket, "k", b"across")
    store.copy(uri(bucket, "k"), uri(other, "k2"))
    assert read(store, other, "k2") == b"across"


def test_a_reader_never_mixes_two_versions(store: ArtifactStore, bucket: str) -> None:
    put(store, bucket, "v", b"old" * 1000)
    with store.open_object(uri(bucket, "v")) as reader:
        put(store, bucket, "v", b"new" * 1000)
        with contextlib.suppress(PreconditionFailedError):  # S3 refuses rather than mixes
            assert b"".join(reader.chunks()) == b"old" * 1000
    assert read(store, bucket, "v") == b"new" * 1000


# Atomicity


def test_failed_write_leaves_nothing_and_keeps_the_old_object(
    store: ArtifactStore, bucket: str
) -> None:
    with pytest.raises(ConnectionResetError):
        store.write(uri(bucket, "new"), Failing())  # type: ignore[arg-type]
    assert store.stat(uri(bucket, "new")) is None
    put(store, bucket, "old", b"old contents")
    with pytest.raises(ConnectionResetError):
        store.write(uri(bucket, "old"), Failing())  # type: ignore[arg-type]
    assert read(store, bucket, "old") == b"old contents"
    assert keys(store, bucket) == ["old"]


def test_an_uncommitted_writer_is_invisible_until_commit(store: ArtifactStore, bucket: str) -> None:
    writer = store.open_write(uri(bucket, "w"), ObjectMetadata(content_type="a/b"))
    writer.write(b"x" * (MIN_PART_BYTES + 10))  # the S3 backend has started a multipart upload
    assert store.stat(uri(bucket, "w")) is None
    assert keys(store, bucket) == []
    info = writer.commit()
    assert (info.size, info.metadata.content_type) == (MIN_PART_BYTES + 10, "a/b")
    with store.open_write(uri(bucket, "aborted")) as aborted:
        aborted.write(b"never seen")
    assert store.stat(uri(bucket, "aborted")) is None
    assert keys(store, bucket) == ["w"]
    assert store.list_multipart_uploads(bucket) == []


# Keys


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a/..", "./a", "/etc/passwd", "a\\b"])
def test_keys_that_could_leave_the_bucket_are_rejected(
    store: ArtifactStore, bucket: str, key: str
) -> None:
    target = uri(bucket, key)
    with pytest.raises(ValidationError, match="key"):
        store.validate_key(target)
    with pytest.raises(ValidationError):
        store.write(target, io.BytesIO(b"x"))
    with pytest.raises(ValidationError):
        store.create_multipart_upload(target)
    assert keys(store, bucket) == []


def test_an_empty_key_names_no_object(store: ArtifactStore, bucket: str) -> None:
    with pytest.raises(ValidationError, match="does not name an object"):
        store.write(uri(bucket, ""), io.BytesIO(b"x"))


def test_folder_markers_live_beside_the_keys_under_them(store: ArtifactStore, bucket: str) -> None:
    put(store, bucket, "data/", b"")
    put(store, bucket, "data/train.csv", b"1,2")
    put(store, bucket, "data/deep/", b"marker with bytes")
    assert keys(store, bucket) == ["data/", "data/deep/", "data/train.csv"]
    assert keys(store, bucket, "data/d") == ["data/deep/"]
    marker = store.stat(uri(bucket, "data/"))
    assert marker is not None and (marker.size, marker.etag) == (0, md5(b""))
    assert read(store, bucket, "data/deep/") == b"marker with bytes"
    assert store.delete(uri(bucket, "data/"))
    assert store.stat(uri(bucket, "data/")) is None
    assert keys(store, bucket) == ["data/deep/", "data/train.csv"]
    assert store.delete(uri(bucket, "data/train.csv"))
    assert store.delete(uri(bucket, "data/deep/"))
    assert keys(store, bucket) == []
    store.delete_bucket(bucket)  # nothing left behind on disk either


# Buckets


def test_bucket_lifecycle(store: ArtifactStore) -> None:
    name = f"contract-{uuid.uuid4().hex[:12]}"
    assert store.bucket(name) is None
    before = time.time() - 2
    created = store.create_bucket(name)
    assert created.name == name
    assert before <= created.created <= time.time() + 2
    found = store.bucket(name)
    assert found is not None
    assert abs(found.created - created.created) < 2
    assert name in [b.name for b in store.list_buckets()]
    with pytest.raises(BucketAlreadyOwnedByYouError):
        store.create_bucket(name)

    put(store, name, "a/b", b"x")
    with pytest.raises(BucketNotEmptyError):
        store.delete_bucket(name)
    store.delete(uri(name, "a/b"))
    store.create_multipart_upload(uri(name, "pending"))  # does not keep a bucket alive
    store.delete_bucket(name)
    assert store.bucket(name) is None
    assert name not in [b.name for b in store.list_buckets()]
    with pytest.raises(NoSuchBucketError):
        store.delete_bucket(name)


def test_invalid_bucket_names_are_rejected(store: ArtifactStore) -> None:
    for name in ("UPPER", "ab", "a..b", ".sabio", "-x-"):
        with pytest.raises(ValidationError):
            store.create_bucket(name)


# Multipart uploads


def start(store: ArtifactStore, bucket: str, key: str) -> str:
    return store.create_multipart_upload(uri(bucket, key), ObjectMetadata(content_type="x/y"))


def upload_part(
    store: ArtifactStore, bucket: str, key: str, upload: str, n: int, data: bytes
) -> str:
    with store.open_part_write(uri(bucket, key), upload, n) as writer:
        writer.write(data)
        return writer.commit().etag


def test_multipart_upload_with_parts_sent_out_of_order(store: ArtifactStore, bucket: str) -> None:
    upload = start(store, bucket, "mp/obj")
    second = b"tail of the object"
    e2 = upload_part(store, bucket, "mp/obj", upload, 2, second)
    e1 = upload_part(store, bucket, "mp/obj", upload, 1, PART)
    assert (e1, e2) == (md5(PART), md5(second))
    assert [
        (p.number, p.etag, p.size) for p in store.list_parts(uri(bucket, "mp/obj"), upload)
    ] == [
        (1, e1, len(PART)),
        (2, e2, len(second)),
    ]
    assert [u.upload_id for u in store.list_multipart_uploads(bucket)] == [upload]
    assert store.stat(uri(bucket, "mp/obj")) is None  # nothing visible before completion

    info = store.complete_multipart_upload(uri(bucket, "mp/obj"), upload, [(1, e1), (2, f'"{e2}"')])
    joined = bytes.fromhex(e1) + bytes.fromhex(e2)
    expected = hashlib.md5(joined, usedforsecurity=False).hexdigest() + "-2"
    assert (info.size, info.etag, info.metadata.content_type) == (
        len(PART) + len(second),
        expected,
        "x/y",
    )
    assert read(store, bucket, "mp/obj") == PART + second
    assert store.list_multipart_uploads(bucket) == []
    with pytest.raises(NoSuchUploadError):
        store.list_parts(uri(bucket, "mp/obj"), upload)


def test_a_part_uploaded_again_replaces_the_first(store: ArtifactStore, bucket: str) -> None:
    upload = start(store, bucket, "again")
    upload_part(store, bucket, "again", upload, 1, b"first try")
    etag = upload_part(store, bucket, "again", upload, 1, b"second try")
    assert [p.etag for p in store.list_parts(uri(bucket, "again"), upload)] == [etag]
    store.complete_multipart_upload(uri(bucket, "again"), upload, [(1, etag)])
    assert read(store, bucket, "again") == b"second try"


def test_complete_refuses_bad_part_lists(store: ArtifactStore, bucket: str) -> None:
    upload = start(store, bucket, "bad")
    e1 = upload_part(store, bucket, "bad", upload, 1, b"small")
    e2 = upload_part(store, bucket, "bad", upload, 2, b"also small")
    target = uri(bucket, "bad")
    with pytest.raises(InvalidPartOrderError):
        store.complete_multipart_upload(target, upload, [(2, e2), (1, e1)])
    with pytest.raises(InvalidPartError):
        store.complete_multipart_upload(target, upload, [(1, e1), (3, e2)])
    with pytest.raises(InvalidPartError):
        store.complete_multipart_upload(target, upload, [(1, md5(b"other"))])
    with pytest.raises(EntityTooSmallError):
        store.complete_multipart_upload(target, upload, [(1, e1), (2, e2)])
    assert store.stat(target) is None
    assert len(store.list_parts(target, upload)) == 2  # the upload survives a refused completion


def test_abort_removes_the_upload(store: ArtifactStore, bucket: str) -> None:
    upload = start(store, bucket, "aborted")
    upload_part(store, bucket, "aborted", upload, 1, b"x")
    store.abort_multipart_upload(uri(bucket, "aborted"), upload)
    assert store.stat(uri(bucket, "aborted")) is None
    assert store.list_multipart_uploads(bucket) == []
    with pytest.raises(NoSuchUploadError):
        store.list_parts(uri(bucket, "aborted"), upload)
    with pytest.raises(NoSuchUploadError):
        store.complete_multipart_upload(uri(bucket, "aborted"), upload, [(1, md5(b"x"))])
    with pytest.raises(NoSuchUploadError):
        store.abort_multipart_upload(uri(bucket, "aborted"), upload)


def test_unknown_uploads(store: ArtifactStore, bucket: str) -> None:
    upload = start(store, bucket, "mine")
    for key, upload_id in (("mine", "0" * 32), ("other-key", upload)):
        with pytest.raises(NoSuchUploadError):
            store.open_part_write(uri(bucket, key), upload_id, 1)
        with pytest.raises(NoSuchUploadError):
            store.upload(uri(bucket, key), upload_id)
    assert store.upload(uri(bucket, "mine"), upload).uri == uri(bucket, "mine")


def test_uploads_are_listed_by_key_and_prefix(store: ArtifactStore, bucket: str) -> None:
    b = start(store, bucket, "logs/b")
    a = start(store, bucket, "logs/a")
    start(store, bucket, "other")
    listed = store.list_multipart_uploads(bucket, "logs/")
    assert [(u.uri.key, u.upload_id) for u in listed] == [("logs/a", a), ("logs/b", b)]


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 1, 2), (2, 3, 1)])
def test_parts_with_declared_sizes_in_any_order(
    store: ArtifactStore, bucket: str, order: tuple[int, int, int]
) -> None:
    data = {1: PART, 2: PART[::-1], 3: b"the short last part"}
    upload = start(store, bucket, "sized")
    etags = {}
    for number in order:
        with store.open_part_write(uri(bucket, "sized"), upload, number, len(data[number])) as w:
            w.write(data[number])
            etags[number] = w.commit().etag
    info = store.complete_multipart_upload(
        uri(bucket, "sized"), upload, [(n, etags[n]) for n in (1, 2, 3)]
    )
    assert info.size == sum(len(d) for d in data.values())
    assert read(store, bucket, "sized") == data[1] + data[2] + data[3]
