"""Bringing a job's input channels from the artifact store to each instance's
`input/data/<channel>`: `S3Prefix` and `ManifestFile`, `FullyReplicated` or `ShardedByS3Key`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sabio.artifacts.markers import without_folder_markers
from sabio.artifacts.registry import ArtifactRegistry
from sabio.artifacts.store import ArtifactStore, ObjectInfo
from sabio.artifacts.uri import ObjectUri, parse


class ChannelError(Exception):
    """A channel's data could not be found or fetched; the message says which and why."""


@dataclass(frozen=True)
class ChannelObject:
    info: ObjectInfo
    relative: str


def resolve_objects(
    artifacts: ArtifactRegistry, name: str, source: dict[str, Any]
) -> tuple[ArtifactStore, list[ChannelObject]]:
    """The objects a channel's `S3DataSource` names, with the path each gets under the channel."""
    uri = source["S3Uri"]
    data_type = source.get("S3DataType", "S3Prefix")
    store, parsed = artifacts.resolve(uri)
    if data_type == "S3Prefix":
        objects = list(without_folder_markers(store.list(parsed)))
        found = [
            ChannelObject(
                o, o.uri.key[len(parsed.key) :].lstrip("/") or o.uri.key.rsplit("/", 1)[-1]
            )
            for o in objects
        ]
    elif data_type == "ManifestFile":
        found = _manifest(store, parsed, uri)
    else:
        raise ChannelError(f"Channel {name}: S3DataType {data_type} is not supported yet.")
    if not found:
        raise ChannelError(f"Channel {name}: no data found at {uri}.")
    return store, found


def _manifest(store: ArtifactStore, manifest: ObjectUri, uri: str) -> list[ChannelObject]:
    try:
        with store.open_read(manifest) as stream:
            entries = json.loads(stream.read())
    except FileNotFoundError:
        raise ChannelError(f"The manifest file {uri} does not exist.") from None
    except ValueError as exc:
        raise ChannelError(f"The manifest file {uri} is not valid JSON: {exc}") from None
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise ChannelError(f'The manifest file {uri} must start with {{"prefix": ...}}.')
    prefix = parse(str(entries[0].get("prefix", "")))
    found = []
    for relative in entries[1:]:
        if not isinstance(relative, str):
            raise ChannelError(f"The manifest file {uri} lists a non-string entry.")
        target = prefix.child(relative)
        info = store.stat(target)
        if info is None:
            raise ChannelError(f"The manifest file {uri} lists {target}, which does not exist.")
        found.append(ChannelObject(info, relative))
    return found


def shard(
    objects: Sequence[ChannelObject], distribution: str, host_index: int, hosts: int
) -> list[ChannelObject]:
    if distribution != "ShardedByS3Key" or hosts == 1:
        return list(objects)
    return [
        o
        for i, o in enumerate(sorted(objects, key=lambda o: o.info.uri.key))
        if i % hosts == host_index
    ]


def materialize(
    store: ArtifactStore, objects: Sequence[ChannelObject], cache: Path, target: Path
) -> int:
    """Download each object once into `cache`, then link it under `target`. Returns bytes."""
    total = 0
    target.mkdir(parents=True, exist_ok=True)
    for item in objects:
        cached = cache / item.info.uri.bucket / item.info.uri.key
        if not cached.is_file() or cached.stat().st_size != item.info.size:
            store.download_file(item.info.uri, cached)
        destination = target / item.relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.exists():
            destination.unlink()
        try:
            os.link(cached, destination)
        except OSError:
            shutil.copyfile(cached, destination)
        total += item.info.size
    return total
