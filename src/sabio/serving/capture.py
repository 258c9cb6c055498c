"""Data capture: SageMaker's JSON Lines records of what an endpoint received and answered,
written under `<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/`.

Recording is a list append on the request path; a background task batches the records into
objects off the request path, and whatever is buffered is written on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sabio.artifacts.registry import ArtifactRegistry

log = logging.getLogger("sabio.capture")


@dataclass(frozen=True)
class CapturePolicy:
    """An endpoint's `DataCaptureConfig`, ready for the request path."""

    destination: str
    sampling: float
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str]
    json_types: frozenset[str]

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> CapturePolicy | None:
        if not config or not config.get("EnableCapture", True):
            return None
        modes = {o["CaptureMode"] for o in config.get("CaptureOptions") or []}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            destination=config["DestinationS3Uri"].rstrip("/"),
            sampling=float(config.get("InitialSamplingPercentage", 100)) / 100.0,
            capture_input=bool(modes & {"Input", "InputAndOutput"}),
            capture_output=bool(modes & {"Output", "InputAndOutput"}),
            csv_types=frozenset(t.lower() for t in header.get("CsvContentTypes") or []),
            json_types=frozenset(t.lower() for t in header.get("JsonContentTypes") or []),
        )

    def sampled(self) -> bool:
        return self.sampling >= 1.0 or random.random() < self.sampling

    def _encode(self, data: bytes, content_type: str, mode: str) -> dict[str, str]:
        media = content_type.split(";", 1)[0].strip().lower()
        if media in self.csv_types:
            encoding, text = "CSV", data.decode("utf-8", "replace")
        elif media in self.json_types:
            encoding, text = "JSON", data.decode("utf-8", "replace")
        else:
            encoding, text = "BASE64", base64.b64encode(data).decode()
        return {
            "observedContentType": content_type,
            "mode": mode,
            "data": text,
            "encoding": encoding,
        }

    def record(
        self,
        request: bytes,
        request_type: str,
        response: bytes,
        response_type: str,
        inference_id: str | None,
        when: float,
    ) -> str:
        capture: dict[str, Any] = {}
        if self.capture_input:
            capture["endpointInput"] = self._encode(request, request_type, "INPUT")
        if self.capture_output:
            capture["endpointOutput"] = self._encode(response, response_type, "OUTPUT")
        metadata: dict[str, str] = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if inference_id:
            metadata["inferenceId"] = inference_id
        return json.dumps(
            {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"},
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class Captured:
    """One sampled invocation, kept raw until the writer encodes it off the request path."""

    policy: CapturePolicy
    request: bytes
    request_type: str
    response: bytes
    response_type: str
    inference_id: str | None
    when: float

    def line(self) -> str:
        return self.policy.record(
            self.request,
            self.request_type,
            self.response,
            self.response_type,
            self.inference_id,
            self.when,
        )


@dataclass
class _Buffer:
    records: list[Captured] = field(default_factory=list)


MAX_PENDING = 100_000
"""Records kept per endpoint and variant while their destination cannot be written."""


class CaptureWriter:
    """Buffers capture records per endpoint and variant and writes them in batches."""

    def __init__(self, artifacts: ArtifactRegistry, flush_seconds: float = 5.0) -> None:
        self.artifacts = artifacts
        self.flush_seconds = flush_seconds
        self._buffers: dict[tuple[str, str, str], _Buffer] = defaultdict(_Buffer)
        self._task: asyncio.Task[None] | None = None

    def add(self, endpoint: str, variant: str, captured: Captured) -> None:
        self._buffers[(captured.policy.destination, endpoint, variant)].records.append(captured)

    def add_exchange(
        self,
        endpoint: str,
        variant: str,
        policy: CapturePolicy,
        request: bytes,
        forwarded: Mapping[str, str],
        response: bytes,
        response_type: str,
    ) -> None:
        """Record one sampled invocation; `forwarded` holds the request headers the worker saw
        (its content type and inference id go into the record)."""
        captured = Captured(
            policy,
            request,
            forwarded.get("content-type", "application/octet-stream"),
            response,
            response_type,
            forwarded.get("x-amzn-sagemaker-inference-id"),
            time.time(),
        )
        self.add(endpoint, variant, captured)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="data-capture")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:
                log.exception("writing data capture failed; retrying")

    async def flush(self) -> None:
        """Write what is buffered. A batch whose destination cannot be written goes back to
        the front of its buffer for the next flush (at most `MAX_PENDING` records a buffer,
        the oldest dropped first), so a store that is down for a while loses nothing."""
        batches = {key: buffer.records for key, buffer in self._buffers.items() if buffer.records}
        for key in batches:
            self._buffers[key] = _Buffer()
        if not batches:
            return
        failed = await asyncio.to_thread(self._write, batches)
        for key, records in failed.items():
            buffer = self._buffers[key]
            buffer.records[:0] = records
            excess = len(buffer.records) - MAX_PENDING
            if excess > 0:
                del buffer.records[:excess]
                log.error("data capture for %s/%s: dropped %d records", key[1], key[2], excess)

    def _write(
        self, batches: dict[tuple[str, str, str], list[Captured]]
    ) -> dict[tuple[str, str, str], list[Captured]]:
        """Write each batch as one file; return the batches that could not be written."""
        now = datetime.now(UTC)
        failed = {}
        for key, records in batches.items():
            destination, endpoint, variant = key
            lines = [record.line() for record in records]
            stamp = now.strftime("%Y/%m/%d/%H")
            name = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.jsonl"
            try:
                store, uri = self.artifacts.resolve(
                    f"{destination}/{endpoint}/{variant}/{stamp}/{name}"
                )
                store.write(uri, io.BytesIO(("\n".join(lines) + "\n").encode()))
            except Exception as exc:
                log.warning(
                    "writing data capture for %s/%s to %s failed (%s); keeping %d records "
                    "for the next flush",
                    endpoint,
                    variant,
                    destination,
                    exc,
                    len(records),
                )
                failed[key] = records
        return failed
