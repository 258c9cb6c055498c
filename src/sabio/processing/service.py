"""Processing jobs: validate and record the request, then let the controller run it."""

from __future__ import annotations

from typing import Any

from sabio.artifacts.uri import require_s3
from sabio.errors import ValidationError
from sabio.jobs.service import JobService
from sabio.jobs.validation import check_process_text, check_resources
from sabio.listing import list_page
from sabio.resources import PROCESSING_JOB
from sabio.store.entities import Resource

PROCESSING_ROOT = "/opt/ml/processing/"
DEFAULT_MAX_RUNTIME = 86400
_SPEC_MEMBERS = (
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "ProcessingResources",
    "StoppingCondition",
    "AppSpecification",
    "Environment",
    "NetworkConfig",
    "RoleArn",
    "ExperimentConfig",
)
DESCRIBED_STATE = ("FailureReason", "ExitMessage", "ProcessingStartTime", "ProcessingEndTime")


def _local_path(path: str, where: str) -> None:
    if not path.startswith(PROCESSING_ROOT) or ".." in path.split("/"):
        raise ValidationError(f"{where} '{path}' must be a path under {PROCESSING_ROOT}.")


class ProcessingService(JobService):
    kind = PROCESSING_JOB

    def operations(self) -> dict[str, Any]:
        return {
            "CreateProcessingJob": self.create_processing_job,
            "DescribeProcessingJob": self.describe_processing_job,
            "ListProcessingJobs": self.list_processing_jobs,
            "StopProcessingJob": self.stop_processing_job,
        }

    def create_processing_job(self, request: dict[str, Any]) -> dict[str, Any]:
        self._check(request)
        spec = {key: request[key] for key in _SPEC_MEMBERS if key in request}
        spec.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME})
        resource = self.record(request["ProcessingJobName"], spec, request.get("Tags"))
        return {"ProcessingJobArn": resource.arn}

    def _check(self, request: dict[str, Any]) -> None:
        app = request["AppSpecification"]
        for member in ("ContainerEntrypoint", "ContainerArguments"):
            check_process_text(app.get(member), f"AppSpecification.{member}")
        check_process_text(request.get("Environment"), "Environment")
        if not app.get("ContainerEntrypoint"):
            raise ValidationError(
                f"AppSpecification.ContainerEntrypoint is required: the image {app['ImageUri']} "
                "runs as a Python environment and has no entry point of its own."
            )
        cluster = request["ProcessingResources"]["ClusterConfig"]
        if not cluster.get("InstanceCount"):
            raise ValidationError("ProcessingResources.ClusterConfig.InstanceCount is required.")
        check_resources(
            app["ImageUri"],
            cluster.get("InstanceType"),
            int(cluster["InstanceCount"]),
            max_instances=self.max_instances,
            gpus_available=self.gpus_available,
        )
        names: set[str] = set()
        for item in request.get("ProcessingInputs") or []:
            name = item["InputName"]
            if name in names:
                raise ValidationError(f"Input name {name} is used more than once.")
            names.add(name)
            source = item.get("S3Input")
            if source is None:
                raise ValidationError(f"Input {name}: only S3Input is supported yet.")
            require_s3(source["S3Uri"], f"Input {name} S3Uri")
            _local_path(source.get("LocalPath", ""), f"Input {name} LocalPath")
            if source.get("S3InputMode", "File") == "Pipe":
                raise ValidationError(f"Input {name}: Pipe mode is not supported yet.")
        for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            name = item["OutputName"]
            output = item.get("S3Output")
            if output is None:
                raise ValidationError(f"Output {name}: only S3Output is supported yet.")
            require_s3(output["S3Uri"], f"Output {name} S3Uri")
            _local_path(output.get("LocalPath", ""), f"Output {name} LocalPath")

    def describe_processing_job(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self.catalog.require(PROCESSING_JOB, request["ProcessingJobName"])
        return {
            "ProcessingJobName": resource.name,
            "ProcessingJobArn": resource.arn,
            "ProcessingJobStatus": resource.status,
            "CreationTime": resource.created_at,
            "LastModifiedTime": resource.updated_at,
            **resource.spec,
            **{key: resource.state[key] for key in DESCRIBED_STATE if key in resource.state},
        }

    def list_processing_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        return list_page(
            self.catalog.repository,
            PROCESSING_JOB.key,
            request,
            "ProcessingJobSummaries",
            _summary,
        )

    def stop_processing_job(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.stop(request["ProcessingJobName"])


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "ProcessingJobName": resource.name,
        "ProcessingJobArn": resource.arn,
        "CreationTime": resource.created_at,
        "ProcessingEndTime": resource.state.get("ProcessingEndTime"),
        "LastModifiedTime": resource.updated_at,
        "ProcessingJobStatus": resource.status,
        "FailureReason": resource.state.get("FailureReason"),
        "ExitMessage": resource.state.get("ExitMessage"),
    }
