"""Training jobs: validate and record the request, then let the controller run it."""

from __future__ import annotations

import re
import time
from typing import Any

from sabio.artifacts.uri import require_s3
from sabio.errors import ValidationError
from sabio.jobs.service import JobService
from sabio.jobs.validation import check_process_text, check_resources
from sabio.listing import list_page
from sabio.resources import TRAINING_JOB
from sabio.store.entities import Resource
from sabio.training import status

_SPEC_MEMBERS = (
    "HyperParameters",
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "VpcConfig",
    "StoppingCondition",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "DebugHookConfig",
    "ExperimentConfig",
    "Environment",
    "RetryStrategy",
)
DEFAULT_MAX_RUNTIME = 86400
CHECKPOINT_PATH = "/opt/ml/checkpoints"


class TrainingService(JobService):
    kind = TRAINING_JOB

    def operations(self) -> dict[str, Any]:
        return {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "ListTrainingJobs": self.list_training_jobs,
            "StopTrainingJob": self.stop_training_job,
        }

    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        self._check(request)
        spec = {key: request[key] for key in _SPEC_MEMBERS if key in request}
        spec.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME})
        spec["StoppingCondition"].setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
        spec.setdefault("EnableNetworkIsolation", False)
        spec.setdefault("EnableInterContainerTrafficEncryption", False)
        spec.setdefault("EnableManagedSpotTraining", False)
        now = time.time()
        state = {
            "SecondaryStatus": status.STARTING,
            "SecondaryStatusTransitions": [
                {
                    "Status": status.STARTING,
                    "StartTime": now,
                    "StatusMessage": "Preparing the instances for training",
                }
            ],
        }
        resource = self.record(request["TrainingJobName"], spec, request.get("Tags"), state)
        return {"TrainingJobArn": resource.arn}

    def _check(self, request: dict[str, Any]) -> None:
        check_process_text(request.get("HyperParameters"), "HyperParameters")
        check_process_text(request.get("Environment"), "Environment")
        algorithm = request.get("AlgorithmSpecification")
        if not algorithm:
            raise ValidationError("AlgorithmSpecification is required.")
        for member in ("ContainerEntrypoint", "ContainerArguments"):
            check_process_text(algorithm.get(member), f"AlgorithmSpecification.{member}")
        if algorithm.get("AlgorithmName") and not algorithm.get("TrainingImage"):
            raise ValidationError(
                "AlgorithmSpecification.AlgorithmName: algorithm resources are not supported "
                "yet; give TrainingImage."
            )
        image = algorithm.get("TrainingImage")
        if not image:
            raise ValidationError("AlgorithmSpecification.TrainingImage is required.")
        if algorithm.get("TrainingInputMode", "File") == "Pipe":
            raise ValidationError(
                "TrainingInputMode Pipe is not supported yet; use File or FastFile."
            )
        for definition in algorithm.get("MetricDefinitions") or []:
            try:
                re.compile(definition["Regex"])
            except re.error as exc:
                raise ValidationError(
                    f"MetricDefinitions: the regex of {definition['Name']} is invalid: {exc}"
                ) from None
        resources = request.get("ResourceConfig") or {}
        if resources.get("InstanceGroups"):
            raise ValidationError("ResourceConfig.InstanceGroups is not supported yet.")
        check_resources(
            image,
            resources.get("InstanceType"),
            int(resources.get("InstanceCount") or 1),
            max_instances=self.max_instances,
            gpus_available=self.gpus_available,
        )
        require_s3(request["OutputDataConfig"]["S3OutputPath"], "OutputDataConfig.S3OutputPath")
        names: set[str] = set()
        for channel in request.get("InputDataConfig") or []:
            name = channel["ChannelName"]
            if name in names:
                raise ValidationError(f"Channel name {name} is used more than once.")
            names.add(name)
            source = channel["DataSource"].get("S3DataSource")
            if source is None:
                raise ValidationError(f"Channel {name}: only S3DataSource is supported yet.")
            require_s3(source["S3Uri"], f"Channel {name} S3Uri")
            if channel.get("InputMode") == "Pipe":
                raise ValidationError(f"Channel {name}: Pipe mode is not supported yet.")
        checkpoint = request.get("CheckpointConfig")
        if checkpoint:
            require_s3(checkpoint["S3Uri"], "CheckpointConfig.S3Uri")
            if checkpoint.get("LocalPath", CHECKPOINT_PATH).rstrip("/") != CHECKPOINT_PATH:
                raise ValidationError(
                    f"CheckpointConfig.LocalPath must be {CHECKPOINT_PATH} for now."
                )
        submit = (request.get("HyperParameters") or {}).get("sagemaker_submit_directory")
        if submit:
            location = submit.strip('"')
            if "://" in location:
                require_s3(location, "sagemaker_submit_directory")

    def describe_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self.catalog.require(TRAINING_JOB, request["TrainingJobName"])
        state = resource.state
        return {
            "TrainingJobName": resource.name,
            "TrainingJobArn": resource.arn,
            "TrainingJobStatus": resource.status,
            "CreationTime": resource.created_at,
            "LastModifiedTime": resource.updated_at,
            **resource.spec,
            **{key: state[key] for key in status.DESCRIBED_STATE if key in state},
        }

    def list_training_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        return list_page(
            self.catalog.repository, TRAINING_JOB.key, request, "TrainingJobSummaries", _summary
        )

    def stop_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.stop(request["TrainingJobName"])


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "TrainingJobName": resource.name,
        "TrainingJobArn": resource.arn,
        "CreationTime": resource.created_at,
        "TrainingEndTime": resource.state.get("TrainingEndTime"),
        "LastModifiedTime": resource.updated_at,
        "TrainingJobStatus": resource.status,
        "SecondaryStatus": resource.state.get("SecondaryStatus"),
    }
