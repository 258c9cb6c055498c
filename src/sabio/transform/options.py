"""What a transform job asked for, and the values in effect once the model has had its say
(`GET /execution-parameters`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sabio.transform import jsonpath
from sabio.transform.joins import Processor, data_format
from sabio.transform.records import MULTI_RECORD, NONE, SINGLE_RECORD

_STRATEGIES = {"MULTI_RECORD": MULTI_RECORD, "SINGLE_RECORD": SINGLE_RECORD}


@dataclass(frozen=True)
class Options:
    """What the job asked for; None where execution-parameters or defaults decide."""

    split_type: str = NONE
    batch_strategy: str | None = None
    max_payload_mb: int | None = None
    max_concurrent: int | None = None  # per instance
    content_type: str | None = None
    accept: str | None = None
    compression: str = NONE
    assemble_with: str = NONE
    timeout: float = 600.0
    max_retries: int = 3
    processor: Processor = field(default_factory=Processor)


@dataclass(frozen=True)
class Effective:
    batch_strategy: str
    max_payload_mb: int
    max_concurrent: int

    def describe(self) -> dict[str, Any]:
        return {
            "BatchStrategy": self.batch_strategy,
            "MaxPayloadInMB": self.max_payload_mb,
            "MaxConcurrentTransforms": self.max_concurrent,
        }


def _whole(value: Any, low: int, high: int | None = None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    number = int(value)
    if number < low or (high is not None and number > high):
        return None
    return number


def resolve(options: Options, parameters: Mapping[str, Any]) -> Effective:
    """Request values win, then the model's `GET /execution-parameters`, then defaults."""
    concurrent = options.max_concurrent or _whole(parameters.get("MaxConcurrentTransforms"), 1)
    if options.split_type == NONE:
        strategy = SINGLE_RECORD  # a whole object is one record
    else:
        strategy = options.batch_strategy or _STRATEGIES.get(
            str(parameters.get("BatchStrategy", "")).upper(), MULTI_RECORD
        )
    payload = options.max_payload_mb
    if payload is None:
        payload = _whole(parameters.get("MaxPayloadInMB"), 0, 100)
    return Effective(strategy, 6 if payload is None else payload, concurrent or 1)


def options_of(spec: dict[str, Any]) -> Options:
    """The Options of a CreateTransformJob request as stored."""
    transform_input = spec["TransformInput"]
    transform_output = spec["TransformOutput"]
    processing = spec.get("DataProcessing") or {}
    client = spec.get("ModelClientConfig") or {}
    assemble_with = transform_output.get("AssembleWith") or NONE
    processor = Processor(
        input_format=data_format(transform_input.get("ContentType")),
        input_filter=jsonpath.parse(processing.get("InputFilter")),
        join=processing.get("JoinSource") == "Input",
        output_filter=jsonpath.parse(processing.get("OutputFilter")),
        assemble_with=assemble_with,
    )
    return Options(
        split_type=transform_input.get("SplitType") or NONE,
        batch_strategy=spec.get("BatchStrategy"),
        max_payload_mb=spec.get("MaxPayloadInMB"),
        max_concurrent=spec.get("MaxConcurrentTransforms") or None,
        content_type=transform_input.get("ContentType"),
        accept=transform_output.get("Accept"),
        compression=transform_input.get("CompressionType") or NONE,
        assemble_with=assemble_with,
        timeout=float(client.get("InvocationsTimeoutInSeconds", 600)),
        max_retries=int(client.get("InvocationsMaxRetries", 3)),
        processor=processor,
    )
