"""The loaded model and its inference chain (input -> predict -> output, or transform).

Everything that can be decided once (which handlers exist, whether they want a context,
the default predict callable, Accept negotiation policy) is decided in ``load`` so that
``invoke`` does little more than call the handlers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sabio.serving.worker import codecs
from sabio.serving.worker.defaults import ModelNotFound, default_model_fn, default_predict
from sabio.serving.worker.handlers import (
    Context,
    Hook,
    ModelLoadError,
    UserCode,
    load_user_code,
    one_line,
)
from sabio.serving.worker.streaming import Chunks, is_stream

Headers = Iterable[tuple[bytes, bytes]]
ExtraHeaders = list[tuple[bytes, bytes]]
Reply = tuple[bytes | Chunks, str, ExtraHeaders | None]
Predictor = Callable[[Any, Context | None], Any]
_REQUEST_HOOKS = ("input_fn", "predict_fn", "output_fn", "transform_fn")
_RESERVED_HEADERS = frozenset({"content-length", "content-type", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CLIENT_DECODE_ERRORS = (json.JSONDecodeError, UnicodeDecodeError)


def _run_load_hook(hook: Hook, context: Context, *args: Any) -> Any:
    try:
        return hook.call(context, *args)
    except Exception as exc:
        raise ModelLoadError(f"{hook.name} raised {one_line(exc)}") from exc


def _as_bytes(body: Any, source: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise TypeError(
        f"{source} returned {type(body).__name__}; expected bytes or str, "
        "or a (body, content_type) tuple"
    )


def _extra_headers(headers: Any, source: str) -> ExtraHeaders | None:
    if not headers:
        return None
    if not isinstance(headers, Mapping):
        raise TypeError(
            f"{source} returned headers of type {type(headers).__name__}; expected a dict"
        )
    extra: ExtraHeaders = []
    for name, value in headers.items():
        key, text = str(name).lower(), str(value)
        if key in _RESERVED_HEADERS:
            continue
        if not _TOKEN.fullmatch(key) or _CONTROL.search(text):
            raise ValueError(f"{source} returned an invalid response header {key!r}")
        extra.append((key.encode("latin-1"), text.encode("latin-1")))
    return extra


class Service:
    """A model ready to answer invocations; build it with :meth:`load`."""

    def __init__(self, model_dir: Path, code: UserCode, model: Any, default_accept: str) -> None:
        hooks = code.hooks
        self.model = model
        self.model_dir = str(model_dir)
        self.code = code
        self._input_fn = hooks.get("input_fn")
        self._predict_fn = hooks.get("predict_fn")
        self._output_fn = hooks.get("output_fn")
        self._transform_fn = hooks.get("transform_fn")
        self._wants_context = any(
            hooks[name].wants_context for name in _REQUEST_HOOKS if name in hooks
        )
        self._predict = self._predictor(model, self._predict_fn, self._transform_fn is None)
        user_output = self._output_fn is not None or self._transform_fn is not None
        if not user_output and default_accept not in codecs.SUPPORTED:
            raise ModelLoadError(
                f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={default_accept} is not one of "
                f"{', '.join(codecs.SUPPORTED)}, the types the default output_fn produces"
            )
        self.negotiate = codecs.AcceptNegotiator(
            default_accept, None if user_output else codecs.SUPPORTED
        )

    @staticmethod
    def _predictor(model: Any, predict_fn: Hook | None, needed: bool) -> Predictor:
        if predict_fn is not None:
            return lambda data, context: predict_fn.call(context, data, model)
        if not needed:
            return lambda data, context: None
        predict = default_predict(model)
        return lambda data, context: predict(data)

    @classmethod
    def load(cls, model_dir: Path, environ: Mapping[str, str] | None = None) -> Service:
        """Import user code and load the model; any failure is a one-line ModelLoadError."""
        env = os.environ if environ is None else environ
        code = load_user_code(model_dir, env)
        default_accept = env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").strip()
        try:
            accept = codecs.parse_content_type(default_accept or codecs.JSON)[0]
        except codecs.CodecError as exc:
            raise ModelLoadError(f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: {exc}") from exc
        context = Context(str(model_dir))
        hooks = code.hooks
        if "pre_model_fn" in hooks:
            _run_load_hook(hooks["pre_model_fn"], context, str(model_dir))
        if "model_fn" in hooks:
            model = _run_load_hook(hooks["model_fn"], context, str(model_dir))
        else:
            try:
                model = default_model_fn(model_dir)
            except ModelNotFound as exc:
                raise ModelLoadError(f"{exc}; or define model_fn in {code.source}") from exc
        if "model_warmup_fn" in hooks:
            _run_load_hook(hooks["model_warmup_fn"], context, str(model_dir), model)
        return cls(model_dir, code, model, accept)

    def _context(self, headers: Headers) -> Context:
        return Context(
            self.model_dir,
            {name.decode("latin-1"): value.decode("latin-1") for name, value in headers},
        )

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, headers: Headers
    ) -> Reply:
        """Run the chain on one request: (response body, content type, extra headers)."""
        media_type, charset = codecs.parse_content_type(content_type)
        response_type = self.negotiate(accept)
        context = self._context(headers) if self._wants_context else None
        transform_fn = self._transform_fn
        if transform_fn is not None:
            data = self._user_data(body, media_type, charset)
            try:
                result = transform_fn.call(context, self.model, data, media_type, response_type)
            except _CLIENT_DECODE_ERRORS as exc:
                raise codecs.UndecodableBody(f"transform_fn: {one_line(exc)}") from exc
            return self._reply(result, response_type, "transform_fn")
        input_fn = self._input_fn
        if input_fn is None:
            data = codecs.decode(body, media_type, charset)
        else:
            raw = self._user_data(body, media_type, charset)
            try:
                data = input_fn.call(context, raw, media_type)
            except _CLIENT_DECODE_ERRORS as exc:
                raise codecs.UndecodableBody(f"input_fn: {one_line(exc)}") from exc
        prediction = self._predict(data, context)
        output_fn = self._output_fn
        if output_fn is None:
            if is_stream(prediction):
                chunks = Chunks(prediction, "predict_fn", _chunk_encoder(response_type))
                return chunks, response_type, None
            return codecs.encode(prediction, response_type), response_type, None
        return self._reply(
            output_fn.call(context, prediction, response_type), response_type, "output_fn"
        )

    @staticmethod
    def _user_data(body: bytes, media_type: str, charset: str) -> str | bytes:
        if media_type in codecs.TEXT_TYPES:
            return codecs.decode_text(body, media_type, charset)
        return body

    @staticmethod
    def _reply(result: Any, response_type: str, source: str) -> Reply:
        if not isinstance(result, tuple):
            return _body(result, source), response_type, None
        if len(result) not in (2, 3):
            raise TypeError(
                f"{source} returned a {len(result)}-tuple; expected (body, content_type)"
            )
        content_type = result[1] or response_type
        if not isinstance(content_type, str):
            raise TypeError(
                f"{source} returned a content type of type {type(content_type).__name__}"
            )
        headers = _extra_headers(result[2], source) if len(result) == 3 else None
        return _body(result[0], source), content_type, headers


def _body(result: Any, source: str) -> bytes | Chunks:
    """One body, or a stream of chunks when the handler returned an iterator."""
    if is_stream(result):
        return Chunks(result, source, lambda chunk: _as_bytes(chunk, f"{source} (a chunk)"))
    return _as_bytes(result, source)


def _chunk_encoder(media_type: str) -> Callable[[Any], bytes]:
    """The default output_fn for each chunk a streaming predict_fn yields: bytes and text as
    they are, anything else encoded as `media_type`."""

    def encode(chunk: Any) -> bytes:
        if isinstance(chunk, bytes | bytearray | memoryview | str):
            return _as_bytes(chunk, "predict_fn")
        return codecs.encode(chunk, media_type)

    return encode
