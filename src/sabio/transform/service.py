"""Batch transform jobs: validate and record the request, then let the controller run it."""

from __future__ import annotations

import copy
from typing import Any

from sabio.artifacts.uri import require_s3
from sabio.errors import ValidationError, not_found
from sabio.jobs.service import JobService
from sabio.jobs.validation import check_process_text, check_resources
from sabio.listing import list_page
from sabio.models.service import containers_of
from sabio.resources import MODEL, TRANSFORM_JOB
from sabio.store.entities import Resource
from sabio.transform import jsonpath
from sabio.transform.joins import CSV, DATA_TYPES, data_format
from sabio.transform.records import LINE, MULTI_RECORD, NONE, RECORDIO, TFRECORD

MAX_PAYLOAD_MB = 100
DEFAULT_PAYLOAD_MB = 6
DEFAULT_TIMEOUT_SECONDS = 600
DEFAULT_MAX_RETRIES = 3
MODEL_SNAPSHOT = "_Model"  # the model as it was when the job was created; not described

_SPEC_MEMBERS = (
    "ModelName",
    "MaxConcurrentTransforms",
    "ModelClientConfig",
    "MaxPayloadInMB",
    "BatchStrategy",
    "Environment",
    "TransformInput",
    "TransformOutput",
    "DataCaptureConfig",
    "TransformResources",
    "DataProcessing",
    "ExperimentConfig",
)
# Filled in by the controller once the model's execution-parameters are known.
EFFECTIVE = ("MaxConcurrentTransforms", "MaxPayloadInMB", "BatchStrategy")
DESCRIBED_STATE = ("FailureReason", "TransformStartTime", "TransformEndTime")


class TransformService(JobService):
    kind = TRANSFORM_JOB

    def operations(self) -> dict[str, Any]:
        return {
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self.describe_transform_job,
            "ListTransformJobs": self.list_transform_jobs,
            "StopTransformJob": self.stop_transform_job,
        }

    def create_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        model = self._check(request)
        spec = copy.deepcopy({key: request[key] for key in _SPEC_MEMBERS if key in request})
        spec["TransformInput"].setdefault("CompressionType", NONE)
        spec["TransformInput"].setdefault("SplitType", NONE)
        spec["TransformOutput"].setdefault("AssembleWith", NONE)
        if "DataProcessing" in spec:
            processing = spec["DataProcessing"]
            processing.setdefault("InputFilter", "$")
            processing.setdefault("OutputFilter", "$")
            processing.setdefault("JoinSource", NONE)
        client = spec.setdefault("ModelClientConfig", {})
        client.setdefault("InvocationsTimeoutInSeconds", DEFAULT_TIMEOUT_SECONDS)
        client.setdefault("InvocationsMaxRetries", DEFAULT_MAX_RETRIES)
        spec[MODEL_SNAPSHOT] = model.spec
        resource = self.record(request["TransformJobName"], spec, request.get("Tags"))
        return {"TransformJobArn": resource.arn}

    def _check(self, request: dict[str, Any]) -> Resource:
        model_name = request["ModelName"]
        model = self.catalog.repository.get(MODEL.key, model_name)
        if model is None:
            raise not_found("model", self.catalog.arn(MODEL, model_name))
        containers = containers_of(model.spec)
        if len(containers) != 1:
            raise ValidationError(
                f"Model {model_name} has {len(containers)} containers (an inference pipeline); "
                "batch transform supports models with one container for now."
            )
        check_process_text(request.get("Environment"), "Environment")
        resources = request["TransformResources"]
        check_resources(
            containers[0]["Image"],
            resources["InstanceType"],
            int(resources["InstanceCount"]),
            max_instances=self.max_instances,
            gpus_available=self.gpus_available,
        )
        transform_input = request["TransformInput"]
        source = transform_input["DataSource"]["S3DataSource"]
        data_type = source["S3DataType"]
        if data_type not in ("S3Prefix", "ManifestFile"):
            raise ValidationError(
                f"TransformInput.DataSource.S3DataSource.S3DataType {data_type} is not supported "
                "for batch transform; use S3Prefix or ManifestFile."
            )
        require_s3(source["S3Uri"], "TransformInput.DataSource.S3DataSource.S3Uri")
        transform_output = request["TransformOutput"]
        require_s3(transform_output["S3OutputPath"], "TransformOutput.S3OutputPath")
        capture = request.get("DataCaptureConfig")
        if capture:
            require_s3(capture["DestinationS3Uri"], "DataCaptureConfig.DestinationS3Uri")
        payload = request.get("MaxPayloadInMB")
        if payload is not None and not 0 <= payload <= MAX_PAYLOAD_MB:
            raise ValidationError(
                f"MaxPayloadInMB must be between 0 and {MAX_PAYLOAD_MB}; got {payload}."
            )
        concurrency = request.get("MaxConcurrentTransforms") or 0
        effective_payload = DEFAULT_PAYLOAD_MB if payload is None else payload
        if concurrency and concurrency * effective_payload > MAX_PAYLOAD_MB:
            raise ValidationError(
                f"MaxConcurrentTransforms * MaxPayloadInMB must not exceed {MAX_PAYLOAD_MB} MB; "
                f"{concurrency} * {effective_payload} = {concurrency * effective_payload}."
                + (" (MaxPayloadInMB defaults to 6.)" if payload is None else "")
            )
        split = transform_input.get("SplitType") or NONE
        if request.get("BatchStrategy") == MULTI_RECORD and split == NONE:
            raise ValidationError(
                "BatchStrategy MultiRecord needs TransformInput.SplitType Line, RecordIO or "
                "TFRecord; with SplitType None every request carries a whole object."
            )
        self._check_data_processing(request, split)
        return model

    @staticmethod
    def _check_data_processing(request: dict[str, Any], split: str) -> None:
        processing = request.get("DataProcessing") or {}
        try:
            input_filter = jsonpath.parse(
                processing.get("InputFilter"), "DataProcessing.InputFilter"
            )
            output_filter = jsonpath.parse(
                processing.get("OutputFilter"), "DataProcessing.OutputFilter"
            )
        except jsonpath.JsonPathError as exc:
            raise ValidationError(str(exc)) from None
        join = processing.get("JoinSource", NONE) == "Input"
        if input_filter.is_root and output_filter.is_root and not join:
            return
        content_type = request["TransformInput"].get("ContentType")
        data = data_format(content_type)
        if data is None:
            raise ValidationError(
                f"DataProcessing needs TransformInput.ContentType {DATA_TYPES}; got "
                f"'{content_type or ''}'."
            )
        if split in (RECORDIO, TFRECORD):
            raise ValidationError(
                f"DataProcessing works on CSV and JSON records; it cannot be used with "
                f"SplitType {split}."
            )
        accept = request["TransformOutput"].get("Accept")
        if accept and data_format(accept) is None:
            raise ValidationError(
                f"With DataProcessing, TransformOutput.Accept must be {DATA_TYPES}; got '{accept}'."
            )
        if data != CSV:
            return
        if split != LINE:
            raise ValidationError(
                "With ContentType text/csv, DataProcessing needs TransformInput.SplitType Line."
            )
        assemble = request["TransformOutput"].get("AssembleWith") or NONE
        if (join or not output_filter.is_root) and assemble != LINE:
            raise ValidationError(
                "With ContentType text/csv, JoinSource and OutputFilter need "
                "TransformOutput.AssembleWith Line."
            )
        for label, path in (("InputFilter", input_filter), ("OutputFilter", output_filter)):
            if path.by_name:
                raise ValidationError(
                    f"DataProcessing.{label} '{path.text}' selects attributes by name, but CSV "
                    "rows are arrays: use index paths such as $[1:] or $[0,-1]."
                )

    def describe_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self.catalog.require(TRANSFORM_JOB, request["TransformJobName"])
        spec = {k: v for k, v in resource.spec.items() if k != MODEL_SNAPSHOT}
        effective = resource.state.get("Effective") or {}
        return {
            "TransformJobName": resource.name,
            "TransformJobArn": resource.arn,
            "TransformJobStatus": resource.status,
            "CreationTime": resource.created_at,
            **{key: effective[key] for key in EFFECTIVE if key in effective},
            **spec,
            **{key: resource.state[key] for key in DESCRIBED_STATE if key in resource.state},
        }

    def list_transform_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        return list_page(
            self.catalog.repository, TRANSFORM_JOB.key, request, "TransformJobSummaries", _summary
        )

    def stop_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.stop(request["TransformJobName"])


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "TransformJobName": resource.name,
        "TransformJobArn": resource.arn,
        "CreationTime": resource.created_at,
        "TransformEndTime": resource.state.get("TransformEndTime"),
        "LastModifiedTime": resource.updated_at,
        "TransformJobStatus": resource.status,
        "FailureReason": resource.state.get("FailureReason"),
    }
