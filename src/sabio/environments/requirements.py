"""Reading a model's `requirements.txt` into an `EnvironmentSpec`.

The file comes from a user's model archive, so it may only refer to files inside its own
directory and may only use the pip options that make sense for a server-side build; anything
else is rejected up front with the file and line, rather than surfacing later as a uv error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from sabio.environments.spec import (
    EnvironmentBuildError,
    EnvironmentSpec,
    file_url_path,
    is_url,
    looks_like_path,
    parse_line,
)

_COMMENT = re.compile(r"(^|\s+)#.*$")
_LONG_OPTION = re.compile(r"^(--[A-Za-z][\w-]*)(?:\s*=\s*|\s+|$)(.*)$")
_SHORT_OPTION = re.compile(r"^(-[A-Za-z])(?:\s*=\s*|\s*)(.*)$")
_INLINE_OPTION = re.compile(r"\s--?[A-Za-z]")

_INCLUDE = {"-r", "--requirement"}
_EDITABLE = {"-e", "--editable"}
_INDEX_URL = {"-i", "--index-url"}
_EXTRA_INDEX_URL = {"--extra-index-url"}
_FIND_LINKS = {"-f", "--find-links"}


@dataclass
class _Collected:
    root: Path
    requirements: list[str] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    reading: list[Path] = field(default_factory=list)


def parse_requirements_file(path: Path) -> EnvironmentSpec:
    """Parse `path` (and its `-r` includes); local paths come out absolute."""
    resolved = path.resolve()
    if not resolved.is_file():
        raise EnvironmentBuildError(f"Requirements file {path} does not exist.")
    collected = _Collected(root=resolved.parent)
    _read(resolved, collected)
    return EnvironmentSpec(
        requirements=tuple(collected.requirements),
        index_url=collected.index_url,
        extra_index_urls=tuple(collected.extra_index_urls),
        find_links=tuple(collected.find_links),
    )


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with comments stripped and backslash continuations joined, as pip reads them."""
    result: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            result.append((start, line))
    tail = _COMMENT.sub("", pending).strip()
    if tail:
        result.append((start, tail))
    return result


def _read(path: Path, collected: _Collected) -> None:
    if path in collected.reading:
        chain = " -> ".join(_display(p, collected.root) for p in [*collected.reading, path])
        raise EnvironmentBuildError(f"Requirements files include each other: {chain}.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        shown = _display(path, collected.root)
        raise EnvironmentBuildError(f"Cannot read requirements file {shown}: {exc}") from exc
    collected.reading.append(path)
    for number, line in _logical_lines(text):
        where = f"{_display(path, collected.root)}:{number}"
        try:
            if line.startswith("-"):
                _option(line, path, collected)
            else:
                collected.requirements.append(_requirement(line, path.parent, collected.root))
        except EnvironmentBuildError as exc:
            raise EnvironmentBuildError(f"{where}: {exc.message}") from exc
    collected.reading.pop()


def _option(line: str, path: Path, collected: _Collected) -> None:
    match = _LONG_OPTION.match(line) if line.startswith("--") else _SHORT_OPTION.match(line)
    if match is None:
        raise EnvironmentBuildError(f"Cannot read option {line!r}.")
    name, value = match.group(1), match.group(2).strip()
    if name in _EDITABLE:
        raise EnvironmentBuildError(
            f"Editable installs ({line!r}) are not supported; list the package by name or "
            "ship a wheel next to requirements.txt and name its path."
        )
    known = _INCLUDE | _INDEX_URL | _EXTRA_INDEX_URL | _FIND_LINKS
    if name not in known:
        raise EnvironmentBuildError(
            f"pip option {name} is not supported; requirements files may use only -r, "
            "--index-url, --extra-index-url and --find-links besides requirements."
        )
    if not value or len(value.split()) != 1:
        raise EnvironmentBuildError(f"Option {name} needs exactly one value (one per line).")
    if name in _INCLUDE:
        include = _local(value, path.parent, collected.root)
        if not include.is_file():
            raise EnvironmentBuildError(f"Included requirements file {value!r} does not exist.")
        _read(include, collected)
    elif name in _INDEX_URL:
        collected.index_url = _location(value, path.parent, collected.root, as_url=True)
    elif name in _EXTRA_INDEX_URL:
        collected.extra_index_urls.append(
            _location(value, path.parent, collected.root, as_url=True)
        )
    else:
        collected.find_links.append(_location(value, path.parent, collected.root, as_url=False))


def _requirement(line: str, base: Path, root: Path) -> str:
    """The line as uv should see it: local paths made absolute and checked to stay inside."""
    if _INLINE_OPTION.search(line):
        raise EnvironmentBuildError(
            f"Per-requirement options such as --hash are not supported: {line!r}."
        )
    parsed = parse_line(line)
    if parsed.local_path is None:
        return line
    local = _local(str(parsed.local_path), base, root)
    if not local.exists():
        raise EnvironmentBuildError(f"{line!r} names {parsed.local_path}, which does not exist.")
    if parsed.requirement is not None:
        named = Requirement(str(parsed.requirement))
        named.url = local.as_uri()
        return str(named)
    return line if is_url(line) else str(local)


def _location(value: str, base: Path, root: Path, *, as_url: bool) -> str:
    """An index or find-links location; a local one must be inside the model's directory."""
    if is_url(value):
        local = file_url_path(value)
        if local is not None:
            _local(str(local), base, root)
        return value
    if not looks_like_path(value) and not (base / value).exists():
        raise EnvironmentBuildError(f"{value!r} is neither a URL nor an existing path.")
    local = _local(value, base, root)
    return local.as_uri() if as_url else str(local)


def _local(value: str, base: Path, root: Path) -> Path:
    resolved = (base / value).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise EnvironmentBuildError(
            f"{value!r} points outside the directory holding requirements.txt; "
            "only files shipped with the model can be referenced."
        )
    return resolved


def _display(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
