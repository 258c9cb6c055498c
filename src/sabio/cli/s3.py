"""`sabio s3 cp`: copies between local files and `s3://` URIs of the artifact store."""

from __future__ import annotations

from pathlib import Path

from sabio.artifacts.markers import without_folder_markers
from sabio.artifacts.registry import from_settings
from sabio.config import Settings
from sabio.errors import ValidationError


def copy(settings: Settings, source: str, destination: str, *, recursive: bool = False) -> int:
    registry = from_settings(settings)
    remote_source, remote_destination = "://" in source, "://" in destination
    if remote_source == remote_destination:
        raise ValidationError("Copy between a local path and an s3:// URI (one of each).")
    if remote_destination:
        store, target = registry.resolve(destination)
        local = Path(source)
        if local.is_dir():
            if not recursive:
                raise ValidationError(f"{source} is a directory; use --recursive.")
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                key = path.relative_to(local).as_posix()
                store.upload_file(path, target.child(key))
                print(f"upload: {path} to {target.child(key)}")
            return 0
        if not local.is_file():
            raise ValidationError(f"{source} does not exist.")
        if not target.key or target.key.endswith("/"):
            target = target.child(local.name)
        store.upload_file(local, target)
        print(f"upload: {local} to {target}")
        return 0
    store, origin = registry.resolve(source)
    local = Path(destination)
    if recursive:
        for info in without_folder_markers(store.list(origin)):
            rest = info.uri.key[len(origin.key) :]
            if origin.key and not origin.key.endswith("/") and rest and not rest.startswith("/"):
                continue  # a sibling: `tree` names the directory `tree/`, not `treehouse/`
            relative = info.uri.key[len(origin.key) :].lstrip("/") or info.uri.key.rsplit("/")[-1]
            store.download_file(info.uri, local / relative)
            print(f"download: {info.uri} to {local / relative}")
        return 0
    if store.stat(origin) is None:
        raise ValidationError(f"{source} does not exist.")
    if local.is_dir():
        local = local / origin.key.rsplit("/", 1)[-1]
    store.download_file(origin, local)
    print(f"download: {origin} to {local}")
    return 0
