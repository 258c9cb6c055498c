"""Python environments for user code: "images are environments", since Sabio runs no containers.

A model's `requirements.txt` becomes an `EnvironmentSpec`; `EnvironmentBuilder.ensure` turns it
into an interpreter to run the model with: the server's own when it already satisfies the spec,
otherwise a uv-built virtual environment layered over the server's packages and cached by a hash
of its content.
"""

from __future__ import annotations

from sabio.environments.builder import Environment, EnvironmentBuilder
from sabio.environments.spec import EnvironmentBuildError, EnvironmentSpec

__all__ = ["Environment", "EnvironmentBuildError", "EnvironmentBuilder", "EnvironmentSpec"]
