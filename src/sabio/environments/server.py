"""Whether the server's own environment already provides a spec.

Most models need nothing beyond what the server ships (numpy, scikit-learn, ...); answering from
installed metadata lets them start without a venv, a subprocess or network access.
"""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from sabio.environments.spec import EnvironmentSpec, parse_line


def satisfied_by_server(spec: EnvironmentSpec) -> bool:
    """True when every requirement applies to no marker or is installed at a matching version.

    URL and local-path requirements never count as satisfied: the installed copy may differ.
    """
    for line in spec.requirements:
        parsed = parse_line(line)
        if parsed.requirement is None or not parsed.from_index:
            return False
        requirement = parsed.requirement
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if not _installed(requirement, set()):
            return False
    return True


def _installed(requirement: Requirement, seen: set[tuple[str, str]]) -> bool:
    """The distribution matches, and so (recursively) do the dependencies its extras add."""
    try:
        distribution = importlib.metadata.distribution(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    try:
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            return False
    except InvalidVersion:
        return False
    for extra in sorted(requirement.extras):
        key = (canonicalize_name(requirement.name), canonicalize_name(extra))
        if key in seen:
            continue
        seen.add(key)
        for text in distribution.requires or ():
            try:
                dependency = Requirement(text)
            except InvalidRequirement:
                return False
            marker = dependency.marker
            if marker is None or marker.evaluate({"extra": ""}):
                continue  # a base dependency, installed along with the distribution
            if not marker.evaluate({"extra": extra}):
                continue
            dependency.marker = None
            if not _installed(dependency, seen):
                return False
    return True
