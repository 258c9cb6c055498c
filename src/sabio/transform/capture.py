"""Batch data capture (`CreateTransformJob.DataCaptureConfig`), as SageMaker does it.

A transform job does not copy its data: under `DestinationS3Uri` it writes two manifests,
`input/yyyy/mm/dd/hh/<job>.jsonl` and `output/yyyy/mm/dd/hh/<job>.jsonl` (the hour the job
started, UTC), each naming the objects it read or wrote as `[{"prefix": ...}, "relative", ...]`.
With `GenerateInferenceId`, every output record gets an inference id and the job's start time,
which Model Monitor's merge jobs match with ground truth: two more columns in CSV, the members
`SageMakerInferenceId` and `SageMakerInferenceTime` in JSON and JSON Lines.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sabio.artifacts.registry import ArtifactRegistry
from sabio.transform.inputs import InputObject

ID_MEMBER = "SageMakerInferenceId"
TIME_MEMBER = "SageMakerInferenceTime"
OUTPUT_MEMBER = "SageMakerOutput"  # holds an output record that is not a JSON object


def _utc(when: float, pattern: str) -> str:
    return datetime.fromtimestamp(when, UTC).strftime(pattern)


class InferenceIds:
    """Appends an inference id and the job's start time to each record of an output."""

    def __init__(self, accept: str | None, started: float) -> None:
        self.accept = accept
        self.time = _utc(started, "%Y-%m-%dT%H:%M:%SZ")

    def __call__(self, output: bytes, content_type: str | None) -> bytes:
        media = (content_type or self.accept or "").split(";", 1)[0].strip().lower()
        if media.endswith("csv"):
            return b"".join(self._csv(line) for line in output.splitlines(keepends=True))
        if "json" in media:
            return self._json(output)
        return output

    def _csv(self, line: bytes) -> bytes:
        body = line.rstrip(b"\r\n")
        if not body.strip():
            return line
        return body + f",{uuid.uuid4()},{self.time}".encode() + line[len(body) :]

    def _stamp(self, value: Any) -> bytes:
        record = dict(value) if isinstance(value, dict) else {OUTPUT_MEMBER: value}
        record[ID_MEMBER] = str(uuid.uuid4())
        record[TIME_MEMBER] = self.time
        return json.dumps(record).encode()

    def _json(self, output: bytes) -> bytes:
        try:
            whole = json.loads(output)
        except ValueError:
            pass
        else:  # one JSON document (or one JSON line) is one record
            ending = output[len(output.rstrip(b"\r\n")) :]
            return self._stamp(whole) + ending
        stamped = []
        for line in output.splitlines(keepends=True):
            body = line.rstrip(b"\r\n")
            try:
                value = json.loads(body) if body.strip() else None
            except ValueError:
                value = None
            stamped.append(line if value is None else self._stamp(value) + line[len(body) :])
        return b"".join(stamped)


def _manifest(uris: Sequence[str], relatives: Sequence[str]) -> bytes:
    prefix = uris[0][: len(uris[0]) - len(relatives[0])]
    entries: list[Any] = [{"prefix": prefix}]
    for uri, relative in zip(uris, relatives, strict=True):
        entries.append(relative if uri == prefix + relative else uri)
    return (json.dumps(entries) + "\n").encode()


def write_manifests(
    artifacts: ArtifactRegistry,
    config: dict[str, Any],
    job: str,
    started: float,
    done: Sequence[InputObject],
) -> None:
    """The capture manifests of the objects whose output was written (blocking)."""
    if not done:
        return
    destination = config["DestinationS3Uri"].rstrip("/")
    stamp = _utc(started, "%Y/%m/%d/%H")
    relatives = [obj.relative for obj in done]
    manifests = {
        "input": _manifest([str(obj.uri) for obj in done], relatives),
        "output": _manifest([str(obj.output) for obj in done], [r + ".out" for r in relatives]),
    }
    for folder, data in manifests.items():
        store, uri = artifacts.resolve(f"{destination}/{folder}/{stamp}/{job}.jsonl")
        store.write(uri, io.BytesIO(data))
