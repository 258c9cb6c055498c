"""Requests botocore's model accepts, odd in every other way, reach the services: never a 5xx.

Each request is generated from the model with a fixed seed (optional members at random, values
at their limits), then the few members an operation must get right to go past its first check
are pinned to real things: an image Sabio runs, a known instance type, a model and an endpoint
configuration that exist. What the services make of the rest is their business, but it must
be a 2xx or an AWS error, the resources they accept must reach an end state, and nothing may
leave a traceback in the server log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
import requests
from botocore.model import ServiceModel, Shape

from support.deploy import ROLE, SKLEARN_IMAGE
from support.malformed import Requests, overlaid
from support.server import SabioServer, running_server
from support.signed_json import Reply, problem, send

SEED = 4242
SEEDS = 12
TARGET = "SageMaker."
S3 = "s3://sweep-bucket/data"
INSTANCE = "ml.m5.large"
MODEL = "sweep-model"
CONFIG = "sweep-config"
ENDPOINT = "sweep-endpoint"
VARIANT = {
    "ModelName": MODEL,
    "InstanceType": INSTANCE,
    "InitialInstanceCount": 1,
    "ServerlessConfig": None,
}
_ERRORS = {"ValidationException", "ResourceNotFound", "ResourceInUse", "ResourceLimitExceeded"}
_JOB_LISTS = {
    "ListTrainingJobs": ("TrainingJobSummaries", "TrainingJobStatus"),
    "ListProcessingJobs": ("ProcessingJobSummaries", "ProcessingJobStatus"),
    "ListTransformJobs": ("TransformJobSummaries", "TransformJobStatus"),
}

# What each operation must get right to reach its service's deeper checks.
PINNED: dict[str, dict[str, Any]] = {
    "CreateModel": {
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": f"{S3}/model.tar.gz",
            "ModelPackageName": None,
            "ModelDataSource": None,
            "Mode": None,
        },
        "Containers": None,
    },
    "CreateEndpointConfig": {
        "ProductionVariants": VARIANT,
        "?ShadowProductionVariants": VARIANT,
        "?DataCaptureConfig": {"DestinationS3Uri": f"{S3}/capture"},
        "?AsyncInferenceConfig": {
            "OutputConfig": {"S3OutputPath": f"{S3}/async", "?S3FailurePath": f"{S3}/failed"}
        },
        "ExplainerConfig": None,
    },
    "CreateEndpoint": {"EndpointConfigName": CONFIG},
    "UpdateEndpoint": {"EndpointName": ENDPOINT, "EndpointConfigName": CONFIG},
    "UpdateEndpointWeightsAndCapacities": {
        "EndpointName": ENDPOINT,
        "DesiredWeightsAndCapacities": {"VariantName": "AllTraffic"},
    },
    "DescribeEndpoint": {"EndpointName": ENDPOINT},
    "DescribeEndpointConfig": {"EndpointConfigName": CONFIG},
    "DescribeModel": {"ModelName": MODEL},
    "CreateTrainingJob": {
        "AlgorithmSpecification": {
            "TrainingImage": SKLEARN_IMAGE,
            "AlgorithmName": None,
            "TrainingInputMode": "File",
        },
        "ResourceConfig": {"InstanceType": INSTANCE, "InstanceCount": 1, "InstanceGroups": None},
        "OutputDataConfig": {"S3OutputPath": f"{S3}/output"},
        "?InputDataConfig": {
            "DataSource": {
                "S3DataSource": {"S3Uri": f"{S3}/train", "S3DataType": "S3Prefix"},
                "FileSystemDataSource": None,
                "DatasetSource": None,
            },
            "InputMode": "File",
        },
        "?CheckpointConfig": {"S3Uri": f"{S3}/checkpoints", "LocalPath": None},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    },
    "CreateProcessingJob": {
        "AppSpecification": {
            "ImageUri": SKLEARN_IMAGE,
            "ContainerEntrypoint": ["python3", "-c", ""],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": INSTANCE,
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
                "InstancePreferences": None,
            }
        },
        "?ProcessingInputs": {
            "S3Input": {
                "S3Uri": f"{S3}/input",
                "S3DataType": "S3Prefix",
                "LocalPath": "/opt/ml/processing/input/data",
                "S3InputMode": "File",
            },
            "DatasetDefinition": None,
        },
        "?ProcessingOutputConfig": {
            "Outputs": {
                "S3Output": {
                    "S3Uri": f"{S3}/processed",
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
                "FeatureStoreOutput": None,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    },
    "CreateTransformJob": {
        "ModelName": MODEL,
        "TransformResources": {"InstanceType": INSTANCE, "InstanceCount": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{S3}/batch"}}
        },
        "TransformOutput": {"S3OutputPath": f"{S3}/batch-out"},
        "?DataCaptureConfig": {"DestinationS3Uri": f"{S3}/batch-capture"},
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    with running_server(tmp_path_factory.mktemp("grounded")) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def call(server: SabioServer, http: requests.Session, name: str, body: dict[str, Any]) -> Reply:
    return send(server, http, f"{TARGET}{name}", json.dumps(body).encode())


@pytest.fixture(scope="module")
def resources(server: SabioServer, http: requests.Session) -> dict[str, str]:
    """A model, an endpoint configuration and an endpoint the requests can name."""
    created = call(
        server,
        http,
        "CreateModel",
        {"ModelName": MODEL, **overlaid({}, PINNED["CreateModel"])},
    )
    assert created.status == 200, created
    variant = {**VARIANT, "VariantName": "AllTraffic"}
    variant.pop("ServerlessConfig")
    for name, body in (
        ("CreateEndpointConfig", {"EndpointConfigName": CONFIG, "ProductionVariants": [variant]}),
        ("CreateEndpoint", {"EndpointName": ENDPOINT, "EndpointConfigName": CONFIG}),
    ):
        reply = call(server, http, name, body)
        assert reply.status == 200, reply
    arn = json.loads(call(server, http, "DescribeModel", {"ModelName": MODEL}).body)["ModelArn"]
    return {"model_arn": arn}


def implemented(server: SabioServer, http: requests.Session, model: ServiceModel) -> list[str]:
    return [
        name
        for name in model.operation_names
        if send(server, http, f"{TARGET}{name}", b"[]").code != "UnknownOperationException"
    ]


def test_odd_but_valid_requests_get_a_2xx_or_an_aws_error(
    server: SabioServer, http: requests.Session, model: ServiceModel, resources: dict[str, str]
):
    tagging = {"ResourceArn": resources["model_arn"]}
    failures = []
    accepted: dict[str, int] = {}
    for name in implemented(server, http, model):
        if name.startswith("Delete") and name != "DeleteTags":
            continue
        operation = model.operation_model(name)
        pinned = tagging if name in ("AddTags", "ListTags", "DeleteTags") else PINNED.get(name)
        for seed in range(SEEDS):
            body = overlaid(Requests(SEED + seed).full(operation), pinned or {})
            reply = call(server, http, name, body)
            if reply.status == 200:
                accepted[name] = accepted.get(name, 0) + 1
                continue
            why = problem(reply, _ERRORS)
            if why is None and "validation error detected" in reply.message:
                why = f"the generated request broke the model: {reply.message[:300]}"
            if why:
                failures.append(f"{name} {json.dumps(body)[:400]}: {why}")
    assert not failures, f"{len(failures)} bad replies:\n" + "\n".join(failures[:30])
    creates = {"CreateModel", "CreateEndpointConfig", "CreateTrainingJob", "CreateProcessingJob"}
    assert creates <= set(accepted), accepted


@pytest.mark.parametrize(
    ("operation", "member", "where"),
    [
        ("CreateTrainingJob", {"HyperParameters": {"epochs": "1\0"}}, "HyperParameters"),
        ("CreateTrainingJob", {"Environment": {"MODE": "\0"}}, "Environment"),
        (
            "CreateTrainingJob",
            {"AlgorithmSpecification": {"ContainerEntrypoint": ["python3", "t\0.py"]}},
            "AlgorithmSpecification.ContainerEntrypoint",
        ),
        ("CreateProcessingJob", {"Environment": {"MODE": "a\0b"}}, "Environment"),
        (
            "CreateProcessingJob",
            {"AppSpecification": {"ContainerArguments": ["--in\0"]}},
            "AppSpecification.ContainerArguments",
        ),
        ("CreateTransformJob", {"Environment": {"MODE": "\0"}}, "Environment"),
        (
            "CreateModel",
            {"PrimaryContainer": {"Environment": {"SAGEMAKER_PROGRAM": "a\0.py"}}},
            "PrimaryContainer.Environment",
        ),
    ],
)
def test_text_no_process_can_be_given_is_refused_at_create(
    server: SabioServer,
    http: requests.Session,
    resources: dict[str, str],
    operation: str,
    member: dict[str, Any],
    where: str,
):
    """A NUL cannot be passed to `exec`; the model allows it, so the services refuse it."""
    body = {
        operation.removeprefix("Create") + "Name": "nul-text",
        "RoleArn": ROLE,
        **overlaid(overlaid({}, PINNED[operation]), member),
    }
    reply = call(server, http, operation, body)
    assert problem(reply, {"ValidationException"}) is None, reply
    assert reply.message == f"{where} must not contain a NUL character."


def test_accepted_jobs_reach_an_end_state(server: SabioServer, http: requests.Session):
    deadline = time.monotonic() + 120
    running: list[str] = []
    while time.monotonic() < deadline:
        running = []
        for name, (summaries, state) in _JOB_LISTS.items():
            reply = call(server, http, name, {"MaxResults": 100})
            assert reply.status == 200, reply
            for job in json.loads(reply.body)[summaries]:
                if job[state] in ("InProgress", "Stopping"):
                    running.append(f"{name}: {job}")
        if not running:
            break
        time.sleep(0.5)
    assert not running, running


def missing_members(shape: Shape, value: Any, path: str = "") -> list[str]:
    """Required members of the output shape absent from `value`, as dotted paths."""
    missing = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            where = f"{path}.{name}" if path else name
            if name not in value:
                missing += [where] if name in shape.required_members else []
            else:
                missing += missing_members(member, value[name], where)
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            missing += missing_members(shape.member, item, f"{path}.{index}")
    return missing


@pytest.mark.parametrize(
    ("listing", "summaries", "describe", "name"),
    [
        ("ListModels", "Models", "DescribeModel", "ModelName"),
        ("ListEndpointConfigs", "EndpointConfigs", "DescribeEndpointConfig", "EndpointConfigName"),
        ("ListEndpoints", "Endpoints", "DescribeEndpoint", "EndpointName"),
        ("ListTrainingJobs", "TrainingJobSummaries", "DescribeTrainingJob", "TrainingJobName"),
        (
            "ListProcessingJobs",
            "ProcessingJobSummaries",
            "DescribeProcessingJob",
            "ProcessingJobName",
        ),
        ("ListTransformJobs", "TransformJobSummaries", "DescribeTransformJob", "TransformJobName"),
    ],
)
def test_what_the_sweep_created_is_described_in_full(
    server: SabioServer,
    http: requests.Session,
    model: ServiceModel,
    listing: str,
    summaries: str,
    describe: str,
    name: str,
):
    """Odd requests make odd resources; their descriptions still have every required member."""
    listed = call(server, http, listing, {"MaxResults": 100})
    assert listed.status == 200, listed
    found = json.loads(listed.body)[summaries]
    assert found
    output = model.operation_model(describe).output_shape
    failures = []
    for summary in found:
        reply = call(server, http, describe, {name: summary[name]})
        assert reply.status == 200, reply
        described = json.loads(reply.body)
        missing = missing_members(output, described)
        if described.get("TrainingJobStatus") == "Failed":
            # Sabio names ModelArtifacts only once it uploaded them (see docs/training.md).
            missing = [member for member in missing if member != "ModelArtifacts"]
        if missing:
            failures.append(f"{describe} {summary[name]}: no {', '.join(missing)}")
    assert not failures, "\n".join(failures)


def test_nothing_left_a_traceback(server: SabioServer, http: requests.Session):
    """Runs last: nothing the sweep sent made the server or a controller fail unexpectedly."""
    assert call(server, http, "ListModels", {}).status == 200
    assert "Traceback" not in server.logs()
