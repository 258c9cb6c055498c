"""Package index settings for uv, translated from pip's.

Machines configure pip (`PIP_FIND_LINKS` pointing at a CPU torch wheel, extra indexes), but uv
ignores pip's settings; the builder passes them explicitly, dropping local locations that do not
exist so one stale setting cannot fail every build.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sabio.environments.spec import EnvironmentSpec, file_url_path, is_url

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexSettings:
    """Where uv looks for packages, before a spec's own index lines are added."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    index_strategy: str | None = None

    @classmethod
    def usable(
        cls,
        *,
        index_url: str | None,
        extra_index_urls: Iterable[str],
        find_links: Iterable[str],
        index_strategy: str | None = None,
    ) -> IndexSettings:
        index = usable_locations([index_url] if index_url else [])
        return cls(
            index_url=index[0] if index else None,
            extra_index_urls=usable_locations(extra_index_urls),
            find_links=usable_locations(find_links),
            index_strategy=index_strategy,
        )

    @classmethod
    def from_pip_environment(cls, environ: Mapping[str, str]) -> IndexSettings:
        """pip's environment variables; pip merges all indexes, hence `unsafe-best-match`."""
        index = environ.get("PIP_INDEX_URL", "").split()
        extra = environ.get("PIP_EXTRA_INDEX_URL", "").split()
        links = environ.get("PIP_FIND_LINKS", "").split()
        return cls.usable(
            index_url=index[0] if index else None,
            extra_index_urls=extra,
            find_links=links,
            index_strategy="unsafe-best-match" if extra or len(index) > 1 else None,
        )

    def uv_arguments(self, spec: EnvironmentSpec) -> list[str]:
        """`uv pip install` options; the spec's own index lines take precedence over ours."""
        arguments: list[str] = []
        index_url = spec.index_url or self.index_url
        if index_url:
            arguments += ["--index-url", index_url]
        for url in (*spec.extra_index_urls, *self.extra_index_urls):
            arguments += ["--extra-index-url", url]
        for location in (*spec.find_links, *self.find_links):
            arguments += ["--find-links", location]
        if self.index_strategy:
            arguments += ["--index-strategy", self.index_strategy]
        return arguments


def usable_locations(entries: Iterable[str]) -> tuple[str, ...]:
    """Remote URLs as given; local ones (`file://` or paths) only if they exist, made absolute."""
    usable: list[str] = []
    for entry in entries:
        local = file_url_path(entry) if is_url(entry) else Path(entry)
        if local is None:
            usable.append(entry)
        elif local.exists():
            usable.append(entry if is_url(entry) else str(local.resolve()))
        else:
            logger.warning("Ignoring package location %s: it does not exist.", entry)
    return tuple(usable)
