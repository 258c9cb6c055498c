"""Listing a transform job's input objects and naming the output object each one gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sabio.artifacts.markers import without_folder_markers
from sabio.artifacts.registry import ArtifactRegistry
from sabio.artifacts.store import ArtifactStore
from sabio.artifacts.uri import ObjectUri, parse
from sabio.jobs.channels import ChannelError, resolve_objects


class InputError(Exception):
    """The job's input cannot be listed; the message says why."""


@dataclass(frozen=True)
class InputObject:
    uri: ObjectUri
    relative: str
    size: int
    output: ObjectUri


def relative_key(prefix: str, key: str) -> str:
    """The part of `key` that is mirrored under S3OutputPath: relative to the prefix when it
    names a folder, else to the folder the prefix is in (`in/data` -> `data.csv`)."""
    if not prefix or prefix.endswith("/"):
        base = prefix
    elif key.startswith(prefix + "/"):
        base = prefix + "/"
    else:
        base = prefix[: prefix.rfind("/") + 1]
    return key[len(base) :]


def list_inputs(
    artifacts: ArtifactRegistry, source: dict[str, Any], output_path: str
) -> tuple[ArtifactStore, list[InputObject]]:
    """Every object the job transforms, with the output object each one gets."""
    output = parse(output_path)
    uri = source["S3Uri"]
    if source.get("S3DataType") == "ManifestFile":
        try:
            store, objects = resolve_objects(artifacts, "TransformInput", source)
        except ChannelError as exc:
            raise InputError(str(exc).replace("Channel TransformInput: ", "")) from None
        found = [(o.info.uri, o.relative, o.info.size) for o in objects]
    else:
        store, prefix = artifacts.resolve(uri)
        found = [
            (o.uri, relative_key(prefix.key, o.uri.key), o.size)
            for o in without_folder_markers(store.list(prefix))
        ]
        if not found:
            raise InputError(f"No objects found under {uri} (TransformInput S3Prefix).")
    return store, [
        InputObject(where, relative, size, output.child(relative + ".out"))
        for where, relative, size in found
    ]
