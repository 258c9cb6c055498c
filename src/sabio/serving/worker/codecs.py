"""Payload codecs and content negotiation for the media types SageMaker containers speak.

Parsing of Content-Type and Accept headers is memoised per distinct header value, since a
client sends the same few values on every request of the hot path.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
SUPPORTED: tuple[str, ...] = (JSON, CSV, NPY)
TEXT_TYPES = frozenset({JSON, CSV})
_SUPPORTED_LIST = ", ".join(SUPPORTED)
_MAX_CACHED_ACCEPTS = 512


class CodecError(Exception):
    """A request the worker cannot decode or answer; ``status`` is the HTTP status to send."""

    status = 400


class UnsupportedMediaType(CodecError):
    """The request's Content-Type or Accept names nothing the worker can produce or read."""

    status = 415


class UndecodableBody(CodecError):
    """The body does not parse as the declared media type."""

    status = 400


@lru_cache(maxsize=256)
def parse_content_type(header: str | None) -> tuple[str, str]:
    """Split a Content-Type into (lowercase media type, charset); JSON when absent."""
    if not header:
        return JSON, "utf-8"
    media, _, params = header.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or "utf-8"
            try:
                charset = codecs.lookup(charset).name
            except LookupError:
                raise UnsupportedMediaType(f"Unsupported charset {charset!r}") from None
    return media.strip().lower() or JSON, charset


@lru_cache(maxsize=256)
def accept_ranges(header: str) -> tuple[str, ...]:
    """Media ranges of an Accept header, most preferred first, q=0 entries dropped."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        media, _, params = part.partition(";")
        media = media.strip().lower()
        if not media:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 1.0
        if quality > 0:
            ranked.append((-quality, index, media))
    ranked.sort()
    return tuple(media for _, _, media in ranked)


class AcceptNegotiator:
    """Chooses the response media type for an Accept header.

    ``supported=None`` means a user ``output_fn`` decides what it can produce, so any concrete
    media type is passed through; wildcards still resolve against the built-in types.
    """

    def __init__(self, default: str, supported: tuple[str, ...] | None) -> None:
        self.default = default
        self.supported = supported
        self._cache: dict[str, str] = {}

    def __call__(self, header: str | None) -> str:
        if not header:
            return self.default
        cached = self._cache.get(header)
        if cached is not None:
            return cached
        chosen = self._negotiate(header)
        if len(self._cache) < _MAX_CACHED_ACCEPTS:
            self._cache[header] = chosen
        return chosen

    def _negotiate(self, header: str) -> str:
        known = self.supported or SUPPORTED
        for media in accept_ranges(header):
            if media in ("*/*", "*"):
                return self.default
            if media.endswith("/*"):
                prefix = media[:-1]
                if self.default.startswith(prefix):
                    return self.default
                for candidate in known:
                    if candidate.startswith(prefix):
                        return candidate
            elif self.supported is None or media in self.supported:
                return media
        raise UnsupportedMediaType(
            f"Unsupported Accept {header!r}: supported types are {_SUPPORTED_LIST}"
        )


def unsupported_content_type(media_type: str) -> UnsupportedMediaType:
    """The 415 error for a body type no decoder handles."""
    return UnsupportedMediaType(
        f"Unsupported content type {media_type!r}: supported types are {_SUPPORTED_LIST}"
    )


def decode_text(body: bytes, media_type: str, charset: str) -> str:
    """Body as text for user ``input_fn``; invalid bytes for the charset are the client's fault."""
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        raise UndecodableBody(
            f"Could not decode the {media_type} body as {charset}: {exc}"
        ) from exc


def decode_json(body: bytes, charset: str) -> Any:
    try:
        data = json.loads(body if charset == "utf-8" else body.decode(charset))
        return np.asarray(data)
    except ValueError as exc:
        raise UndecodableBody(f"Could not decode the application/json body: {exc}") from exc


def decode_csv(body: bytes, charset: str) -> Any:
    try:
        lines = body.decode(charset).splitlines()
        if not any(line.strip() for line in lines):
            raise ValueError("the body is empty")
        return np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2, quotechar='"')
    except ValueError as exc:
        raise UndecodableBody(f"Could not decode the text/csv body: {exc}") from exc


def decode_npy(body: bytes, charset: str) -> Any:
    try:
        loaded = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise UndecodableBody(f"Could not decode the application/x-npy body: {exc}") from exc
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise UndecodableBody("Expected a single .npy array, not an .npz archive")
    return loaded


def _json_fallback(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_json(prediction: Any) -> bytes:
    if isinstance(prediction, np.ndarray | np.generic):
        prediction = prediction.tolist()
    return json.dumps(prediction, default=_json_fallback).encode()


def encode_csv(prediction: Any) -> bytes:
    """One CSV row per record: a 1-D prediction becomes one value per line."""
    values = prediction.tolist() if hasattr(prediction, "tolist") else prediction
    if not isinstance(values, list | tuple):
        values = [values]
    rows = [row if isinstance(row, list | tuple) else [row] for row in values]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def encode_npy(prediction: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(prediction), allow_pickle=False)
    return buffer.getvalue()


DECODERS: dict[str, Callable[[bytes, str], Any]] = {
    JSON: decode_json,
    CSV: decode_csv,
    NPY: decode_npy,
}
ENCODERS: dict[str, Callable[[Any], bytes]] = {
    JSON: encode_json,
    CSV: encode_csv,
    NPY: encode_npy,
}


def decode(body: bytes, media_type: str, charset: str) -> Any:
    """The framework default ``input_fn``: a numpy array from a supported body."""
    decoder = DECODERS.get(media_type)
    if decoder is None:
        raise unsupported_content_type(media_type)
    return decoder(body, charset)


def encode(prediction: Any, media_type: str) -> bytes:
    """The framework default ``output_fn`` for an already negotiated media type."""
    encoder = ENCODERS.get(media_type)
    if encoder is None:
        raise UnsupportedMediaType(
            f"Unsupported Accept {media_type!r}: supported types are {_SUPPORTED_LIST}"
        )
    return encoder(prediction)
