"""URI parsing, the local artifact store on a real file system, and the scheme registry."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.registry import ArtifactRegistry, from_settings
from sabio.artifacts.store import ArtifactStore
from sabio.artifacts.uri import MAX_KEY_BYTES, ObjectUri, parse
from sabio.config import Settings
from sabio.errors import ValidationError

# parse()


def test_parse_splits_scheme_bucket_and_key() -> None:
    assert parse("s3://my-bucket/a/b/c.tar.gz") == ObjectUri("s3", "my-bucket", "a/b/c.tar.gz")
    assert parse("S3://bucket/Key") == ObjectUri("s3", "bucket", "Key")  # scheme is lowercased
    assert parse("s3://bucket") == ObjectUri("s3", "bucket", "")
    assert parse("s3://bucket/") == ObjectUri("s3", "bucket", "")
    assert parse("s3://bucket/prefix/") == ObjectUri("s3", "bucket", "prefix/")
    assert parse("s3://b.with.dots-1/k") == ObjectUri("s3", "b.with.dots-1", "k")
    assert str(parse("s3://bucket/a/b")) == "s3://bucket/a/b"


def test_child_joins_under_a_prefix() -> None:
    assert parse("s3://bucket/dir").child("f.txt") == parse("s3://bucket/dir/f.txt")
    assert parse("s3://bucket/dir/").child("f.txt") == parse("s3://bucket/dir/f.txt")
    assert parse("s3://bucket").child("a/b") == parse("s3://bucket/a/b")
    with pytest.raises(ValidationError):
        parse("s3://bucket/dir").child("../escape")


@pytest.mark.parametrize(
    "key",
    [
        "..",
        "../x",
        "a/../../x",
        "a/..",
        ".",
        "./a",
        "a/./b",
        "/etc/passwd",
        "/",
        "a\\b",
        "..\\x",
        "a\x00b",
    ],
)
def test_parse_rejects_keys_that_could_leave_the_bucket(key: str) -> None:
    with pytest.raises(ValidationError, match="key"):
        parse(f"s3://bucket/{key}")


def test_parse_allows_dots_inside_names() -> None:
    assert parse("s3://bucket/a..b/.hidden/x.").key == "a..b/.hidden/x."


@pytest.mark.parametrize(
    "bucket",
    [
        "",
        "ab",  # too short
        "a" * 64,  # too long
        "UPPER",
        "under_score",
        "-leading",
        "trailing-",
        ".dot",
        "a..b",
        "spa ce",
        "b\x00cket",
    ],
)
def test_parse_rejects_bad_bucket_names(bucket: str) -> None:
    with pytest.raises(ValidationError, match="bucket"):
        parse(f"s3://{bucket}/key")


@pytest.mark.parametrize("uri", ["bucket/key", "://bucket/key", "", "s3:/bucket/key"])
def test_parse_rejects_non_uris(uri: str) -> None:
    with pytest.raises(ValidationError):
        parse(uri)


def test_parse_limits_keys_in_utf8_bytes() -> None:
    assert len(parse(f"s3://bucket/{'k' * MAX_KEY_BYTES}").key) == MAX_KEY_BYTES
    with pytest.raises(ValidationError, match="longer than"):
        parse(f"s3://bucket/{'k' * (MAX_KEY_BYTES + 1)}")
    # 513 characters, but 1026 bytes.
    with pytest.raises(ValidationError, match="longer than"):
        parse(f"s3://bucket/{'é' * (MAX_KEY_BYTES // 2 + 1)}")


# LocalArtifactStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(root: Path) -> LocalArtifactStore:
    return LocalArtifactStore(root)


def put(store: ArtifactStore, uri: str, data: bytes) -> None:
    store.write(parse(uri), io.BytesIO(data))


def read(store: ArtifactStore, uri: str) -> bytes:
    with store.open_read(parse(uri)) as stream:
        return stream.read()


def keys(store: ArtifactStore, prefix: str) -> list[str]:
    return [info.uri.key for info in store.list(parse(prefix))]


def files_on_disk(root: Path) -> list[str]:
    """Files in the bucket directories; the store's own records live under `.sabio/`."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if not p.is_dir() and p.relative_to(root).parts[0] != ".sabio"
    )


class FailingStream(io.RawIOBase):
    """A stream that yields `good` chunks, runs `halfway()`, then fails like a dropped upload."""

    def __init__(self, chunks: list[bytes], fail_after: int, halfway: object = None) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._left = fail_after
        self._halfway = halfway

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            if callable(self._halfway):
                self._halfway()
            raise ConnectionResetError("client went away")
        self._left -= 1
        return next(self._chunks, b"")


def test_write_then_read_stat_and_overwrite(store: LocalArtifactStore, root: Path) -> None:
    uri = parse("s3://bucket/deep/dir/obj.bin")
    info = store.write(uri, io.BytesIO(b"first version"))
    assert (info.uri, info.size) == (uri, 13)
    assert read(store, "s3://bucket/deep/dir/obj.bin") == b"first version"
    assert (root / "bucket" / "deep" / "dir" / "obj.bin").read_bytes() == b"first version"

    info = store.write(uri, io.BytesIO(b"v2"))
    assert info.size == 2
    stat = store.stat(uri)
    assert stat is not None
    assert (stat.size, stat.modified) == (2, info.modified)
    assert read(store, "s3://bucket/deep/dir/obj.bin") == b"v2"
    assert files_on_disk(root) == ["bucket/deep/dir/obj.bin"]


def test_write_of_empty_and_large_objects(store: LocalArtifactStore) -> None:
    put(store, "s3://bucket/empty", b"")
    assert read(store, "s3://bucket/empty") == b""
    big = os.urandom(3 * 1024 * 1024 + 17)  # several copy chunks
    put(store, "s3://bucket/big", big)
    assert read(store, "s3://bucket/big") == big


def test_write_rejects_a_uri_that_names_no_object(store: LocalArtifactStore) -> None:
    for uri in ("s3://bucket", "s3://bucket/"):
        with pytest.raises(ValidationError, match="does not name an object"):
            put(store, uri, b"x")


def test_a_folder_marker_is_a_hidden_file_in_its_directory(
    store: LocalArtifactStore, root: Path
) -> None:
    put(store, "s3://bucket/data/", b"")
    put(store, "s3://bucket/data/x.csv", b"1")
    assert files_on_disk(root) == ["bucket/data/.sabio-folder", "bucket/data/x.csv"]
    assert keys(store, "s3://bucket/") == ["data/", "data/x.csv"]
    with pytest.raises(ValidationError, match="reserves for folder markers"):
        put(store, "s3://bucket/data/.sabio-folder", b"clash")


def test_failed_write_leaves_no_object_and_no_temp_file(
    store: LocalArtifactStore, root: Path
) -> None:
    uri = "s3://bucket/dir/model.tar.gz"
    seen: dict[str, object] = {}

    def halfway() -> None:  # what a concurrent reader sees while the upload is in flight
        seen["stat"] = store.stat(parse(uri))
        seen["list"] = keys(store, "s3://bucket/")

    stream = FailingStream([b"a" * 1000, b"b" * 1000], fail_after=2, halfway=halfway)
    with pytest.raises(ConnectionResetError):
        store.write(parse(uri), stream)  # type: ignore[arg-type]
    assert seen == {"stat": None, "list": []}
    assert store.stat(parse(uri)) is None
    assert keys(store, "s3://bucket/") == []
    assert files_on_disk(root) == []  # the partial file is gone too


def test_failed_overwrite_keeps_the_old_object(store: LocalArtifactStore, root: Path) -> None:
    uri = "s3://bucket/obj"
    put(store, uri, b"old contents")
    seen: list[bytes] = []
    stream = FailingStream(
        [b"new" * 100], fail_after=1, halfway=lambda: seen.append(read(store, uri))
    )
    with pytest.raises(ConnectionResetError):
        store.write(parse(uri), stream)  # type: ignore[arg-type]
    assert seen == [b"old contents"]
    assert read(store, uri) == b"old contents"
    assert files_on_disk(root) == ["bucket/obj"]


def test_stat_open_and_delete_of_missing_objects(store: LocalArtifactStore) -> None:
    put(store, "s3://bucket/dir/obj", b"x")
    for missing in ("s3://bucket/nope", "s3://other/obj", "s3://bucket/dir", "s3://bucket/dir/"):
        assert store.stat(parse(missing)) is None
        with pytest.raises(FileNotFoundError):
            store.open_read(parse(missing))
        assert store.delete(parse(missing)) is False
    assert read(store, "s3://bucket/dir/obj") == b"x"  # deleting a "directory" did nothing


def test_delete(store: LocalArtifactStore) -> None:
    put(store, "s3://bucket/a", b"1")
    put(store, "s3://bucket/b", b"2")
    assert store.delete(parse("s3://bucket/a")) is True
    assert store.stat(parse("s3://bucket/a")) is None
    assert store.delete(parse("s3://bucket/a")) is False
    assert keys(store, "s3://bucket") == ["b"]


def test_list_is_in_key_order_with_plain_prefix_semantics(store: LocalArtifactStore) -> None:
    for key in ["a/c/d", "ab", "a/b", "a-b", "b/x", "a.txt"]:
        put(store, f"s3://bucket/{key}", key.encode())
    put(store, "s3://other/a/b", b"elsewhere")

    assert keys(store, "s3://bucket") == ["a-b", "a.txt", "a/b", "a/c/d", "ab", "b/x"]
    assert keys(store, "s3://bucket/a") == ["a-b", "a.txt", "a/b", "a/c/d", "ab"]
    assert keys(store, "s3://bucket/a/") == ["a/b", "a/c/d"]
    assert keys(store, "s3://bucket/a/c") == ["a/c/d"]
    assert keys(store, "s3://bucket/a/c/d") == ["a/c/d"]
    assert keys(store, "s3://bucket/a/c/d/") == []
    assert keys(store, "s3://bucket/b/") == ["b/x"]
    assert keys(store, "s3://bucket/zzz/") == []
    assert keys(store, "s3://missing-bucket/") == []

    infos = list(store.list(parse("s3://bucket/a/")))
    assert [(i.uri, i.size) for i in infos] == [
        (parse("s3://bucket/a/b"), 3),
        (parse("s3://bucket/a/c/d"), 5),
    ]


def test_list_skips_symlinks(store: LocalArtifactStore, root: Path, tmp_path: Path) -> None:
    put(store, "s3://bucket/real/file", b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    bucket = root / "bucket"
    (bucket / "link-to-file").symlink_to(bucket / "real" / "file")
    (bucket / "link-to-dir").symlink_to(bucket / "real", target_is_directory=True)
    (bucket / "real" / "escape").symlink_to(outside, target_is_directory=True)
    (bucket / "secret").symlink_to(outside / "secret")

    assert keys(store, "s3://bucket/") == ["real/file"]
    assert keys(store, "s3://bucket/real/") == ["real/file"]


def test_symlink_out_of_the_bucket_is_rejected(
    store: LocalArtifactStore, root: Path, tmp_path: Path
) -> None:
    put(store, "s3://bucket/inside", b"x")
    put(store, "s3://neighbour/obj", b"neighbour")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    bucket = root / "bucket"
    (bucket / "escape").symlink_to(outside, target_is_directory=True)
    (bucket / "secret").symlink_to(outside / "secret")
    (bucket / "sideways").symlink_to(root / "neighbour", target_is_directory=True)

    for uri in ("s3://bucket/escape/secret", "s3://bucket/secret", "s3://bucket/sideways/obj"):
        with pytest.raises(ValidationError, match="outside its bucket"):
            store.path_for(parse(uri))
        with pytest.raises(ValidationError, match="outside its bucket"):
            store.open_read(parse(uri))
        with pytest.raises(ValidationError, match="outside its bucket"):
            store.stat(parse(uri))
        with pytest.raises(ValidationError, match="outside its bucket"):
            put(store, uri, b"overwrite")
        with pytest.raises(ValidationError, match="outside its bucket"):
            store.delete(parse(uri))
    assert (outside / "secret").read_bytes() == b"secret"
    assert read(store, "s3://neighbour/obj") == b"neighbour"


def test_upload_and_download_files(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload" * 1000)
    info = store.upload_file(source, parse("s3://bucket/up/source.bin"))
    assert info.size == 7000

    target = tmp_path / "new" / "dir" / "copy.bin"
    store.download_file(parse("s3://bucket/up/source.bin"), target)
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]

    target.write_bytes(b"stale")
    store.download_file(parse("s3://bucket/up/source.bin"), target)  # overwrites
    assert target.read_bytes() == source.read_bytes()


class TruncatingStore(LocalArtifactStore):
    """The local store whose reads break after the first 10 bytes, as a dying disk would."""

    def open_read(self, uri: ObjectUri) -> BinaryIO:
        data = super().open_read(uri)

        class Broken(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def read(self, size: int = -1) -> bytes:
                if data.tell() >= 10:
                    raise OSError("I/O error")
                return data.read(10)

            def close(self) -> None:
                data.close()
                super().close()

        return Broken()  # type: ignore[return-value]


def test_download_is_atomic(root: Path, tmp_path: Path) -> None:
    store = TruncatingStore(root)
    put(store, "s3://bucket/obj", b"0123456789abcdefghij")
    target = tmp_path / "out" / "obj"
    target.parent.mkdir()
    target.write_bytes(b"previous")

    with pytest.raises(OSError, match="I/O error"):
        store.download_file(parse("s3://bucket/obj"), target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in target.parent.iterdir()] == ["obj"]  # no partial file left

    with pytest.raises(FileNotFoundError):
        store.download_file(parse("s3://bucket/missing"), tmp_path / "out" / "missing")
    assert [p.name for p in target.parent.iterdir()] == ["obj"]


# ArtifactRegistry


def test_registry_unknown_scheme_lists_the_known_ones(store: LocalArtifactStore) -> None:
    registry = ArtifactRegistry()
    registry.register("s3", lambda: store)
    registry.register("file", lambda: store)
    with pytest.raises(ValidationError, match=r"known schemes: file://, s3://\.") as raised:
        registry.resolve("gs://bucket/key")
    assert "gs://bucket/key" in raised.value.message


def test_registry_builds_each_store_once_on_first_use(tmp_path: Path) -> None:
    built: list[str] = []

    def factory() -> ArtifactStore:
        built.append("s3")
        return LocalArtifactStore(tmp_path / "root")

    registry = ArtifactRegistry()
    registry.register("s3", factory)
    assert built == []
    store, uri = registry.resolve("s3://bucket/key")
    assert (built, uri) == (["s3"], parse("s3://bucket/key"))
    assert registry.for_uri(parse("s3://other/x")) is store
    assert registry.resolve("S3://bucket/k")[0] is store
    assert built == ["s3"]


def test_server_registry_creates_the_artifact_root_lazily(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", artifact_root=tmp_path / "blobs")
    registry = from_settings(settings)
    assert not (tmp_path / "blobs").exists()
    store, uri = registry.resolve("s3://bucket/k")
    assert isinstance(store, LocalArtifactStore)
    assert store.root == (tmp_path / "blobs").resolve()
    store.write(uri, io.BytesIO(b"v"))
    assert (tmp_path / "blobs" / "bucket" / "k").read_bytes() == b"v"


def test_keys_that_clash_on_disk_are_client_errors(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.write(parse("s3://bucket/a"), io.BytesIO(b"object"))
    with pytest.raises(ValidationError, match="already an object"):
        store.write(parse("s3://bucket/a/b"), io.BytesIO(b"below"))
    store.write(parse("s3://bucket/c/d"), io.BytesIO(b"object"))
    with pytest.raises(ValidationError, match="prefix of other objects"):
        store.write(parse("s3://bucket/c"), io.BytesIO(b"above"))
