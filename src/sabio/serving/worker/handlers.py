"""Finding and importing user inference code, and checking its handler signatures.

Signatures are inspected once at load so the request path only tests a boolean to know
whether a handler wants the trailing ``context`` argument.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PROGRAM = "inference.py"

ARITIES: dict[str, int] = {
    "pre_model_fn": 1,
    "model_fn": 1,
    "model_warmup_fn": 2,
    "input_fn": 2,
    "predict_fn": 2,
    "output_fn": 2,
    "transform_fn": 4,
}
_CHAIN = ("input_fn", "predict_fn", "output_fn")
logger = logging.getLogger(__name__)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class ModelLoadError(Exception):
    """The worker cannot serve; the message is the one-line reason for the failure file."""


def one_line(exc: BaseException) -> str:
    """``"<Type>: <message>"`` on one line, short enough for a status field."""
    text = " ".join(str(exc).split())
    if len(text) > 500:
        text = text[:497] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Context:
    """The ``context`` argument of handlers that take one (mirrors the SageMaker toolkit's)."""

    __slots__ = ("model_dir", "request_headers", "system_properties")

    def __init__(self, model_dir: str, request_headers: dict[str, str] | None = None) -> None:
        self.model_dir = model_dir
        self.system_properties: dict[str, Any] = {"model_dir": model_dir, "gpu_id": None}
        self.request_headers: dict[str, str] = request_headers or {}


@dataclass(frozen=True, slots=True)
class Hook:
    """A user handler and whether it takes the extra trailing ``context`` argument."""

    name: str
    fn: Callable[..., Any]
    wants_context: bool

    def call(self, context: Context | None, *args: Any) -> Any:
        return self.fn(*args, context) if self.wants_context else self.fn(*args)


@dataclass
class UserCode:
    """The user's module (if any) and the handlers it defines."""

    code_dir: Path
    program: str
    module: ModuleType | None = None
    hooks: dict[str, Hook] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.code_dir / self.program)


def wants_context(name: str, fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes the trailing context argument; a ModelLoadError if it fits neither."""
    expected = ARITIES[name]
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    required_keyword = [
        p.name
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    if (
        required_keyword
        or len(required) > expected + 1
        or (len(positional) < expected and not varargs)
    ):
        raise ModelLoadError(
            f"{name} must take {expected} positional argument(s), or {expected + 1} with a "
            f"trailing context; it has the signature {name}{inspect.signature(fn)}"
        )
    return len(positional) > expected


def resolve_code_dir(model_dir: Path, environ: Mapping[str, str]) -> Path:
    """``SAGEMAKER_SUBMIT_DIRECTORY`` when it is a local directory, else ``<model_dir>/code``.

    A submit directory under ``/opt/ml/model`` is remapped under the actual model directory,
    because the platform does not extract models to the path the SageMaker SDK assumes.
    """
    submit = environ.get("SAGEMAKER_SUBMIT_DIRECTORY", "").strip()
    if submit and "://" not in submit:
        candidate = Path(submit)
        default_root = Path(DEFAULT_MODEL_DIR)
        if model_dir.resolve() != default_root and candidate.is_relative_to(default_root):
            candidate = model_dir / candidate.relative_to(default_root)
        if candidate.is_dir():
            return candidate
    return model_dir / "code"


def program_file(environ: Mapping[str, str]) -> str:
    """The user's entry-point file name from ``SAGEMAKER_PROGRAM``, always ending in .py."""
    program = environ.get("SAGEMAKER_PROGRAM", "").strip() or DEFAULT_PROGRAM
    return program if program.endswith(".py") else f"{program}.py"


def _import(code_dir: Path, program: str) -> ModuleType:
    module_name = program[: -len(".py")]
    path = code_dir / program
    code_root = str(code_dir)
    if code_root in sys.path:
        sys.path.remove(code_root)
    sys.path.insert(0, code_root)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"Cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ModelLoadError(f"Importing {path} raised {one_line(exc)}") from exc
    return module


def load_user_code(model_dir: Path, environ: Mapping[str, str] | None = None) -> UserCode:
    """Import the user's entry point if present and collect its (validated) handlers."""
    env = os.environ if environ is None else environ
    code = UserCode(code_dir=resolve_code_dir(model_dir, env), program=program_file(env))
    path = code.code_dir / code.program
    if not path.is_file():
        if env.get("SAGEMAKER_PROGRAM", "").strip():
            logger.warning("SAGEMAKER_PROGRAM names %s, which does not exist: using defaults", path)
        return code
    code.module = _import(code.code_dir, code.program)
    for name in ARITIES:
        fn = getattr(code.module, name, None)
        if fn is None:
            continue
        if not callable(fn):
            raise ModelLoadError(f"{name} in {path} is not callable")
        code.hooks[name] = Hook(name, fn, wants_context(name, fn))
    chain = [name for name in _CHAIN if name in code.hooks]
    if "transform_fn" in code.hooks and chain:
        raise ModelLoadError(
            f"{path} defines transform_fn together with {', '.join(chain)}: define either "
            "transform_fn or the input_fn/predict_fn/output_fn chain, not both"
        )
    return code
