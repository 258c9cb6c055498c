"""The on-disk layout of a built environment: layering `.pth`, metadata, fingerprints, size."""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
from pathlib import Path
from typing import Any

from sabio.environments.spec import EnvironmentBuildError

METADATA_FILE = "sabio-environment.json"
LAYERING_PTH = "_sabio_server_packages.pth"


def layer_over_server(venv: Path) -> None:
    """Make the server's packages importable below the venv's own.

    `site.addsitedir` (not a plain path line) so the server's own `.pth` files run too: an
    editable install of sabio is itself a `.pth` file in the server's site-packages.
    """
    scheme_vars = {"base": str(venv), "platbase": str(venv)}
    site_packages = Path(sysconfig.get_path("purelib", scheme="venv", vars=scheme_vars))
    if not site_packages.is_dir():
        raise EnvironmentBuildError(f"uv created no site-packages at {site_packages}.")
    server_dirs = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    lines = [f"import site; site.addsitedir({directory!r})\n" for directory in server_dirs]
    (site_packages / LAYERING_PTH).write_text("".join(lines))


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    for directory, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            file = Path(directory, name)
            stat = file.lstat()
            relative = file.relative_to(path).as_posix()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def disk_usage(path: Path) -> int:
    """Allocated bytes, each inode once (files hardlinked from uv's cache are shared with it)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _dirnames, filenames in os.walk(path):
        for name in filenames:
            stat = os.lstat(os.path.join(directory, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total
