"""InvokeEndpointAsync against a live server: requests queued, answered in S3 once complete,
model failures written to the failure path, and SageMaker's errors for bad requests."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from asyncinference.async_helpers import (
    deploy_async,
    echo_model,
    eventually,
    exists,
    put_input,
    wait_for_object,
)
from support.deploy import deploy, unique
from support.server import SabioServer


@pytest.fixture(scope="module")
def echo(async_server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One async endpoint (and its bucket) for the module."""
    url = async_server.url
    sm = boto3.client("sagemaker", endpoint_url=url)
    s3 = boto3.client("s3", endpoint_url=url)
    model = echo_model(async_server, tmp_path_factory.mktemp("echo"))
    name, bucket = deploy_async(
        sm, s3, model, ClientConfig={"MaxConcurrentInvocationsPerInstance": 2}
    )
    return name, bucket, model


def test_input_location_answered_in_the_output_path(clients: Any, echo: Any) -> None:
    sm, runtime, s3 = clients
    name, bucket, _ = echo
    described = sm.describe_endpoint(EndpointName=name)
    assert described["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == (
        f"s3://{bucket}/results"
    )
    assert sm.describe_endpoint_config(EndpointConfigName=name)["AsyncInferenceConfig"][
        "ClientConfig"
    ] == {"MaxConcurrentInvocationsPerInstance": 2}
    source = put_input(s3, bucket, "inputs/one.json", {"x": 1, "sleep": 0.5})
    response = runtime.invoke_endpoint_async(
        EndpointName=name,
        InputLocation=source,
        ContentType="application/json",
        InferenceId="first-request",
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "first-request"
    assert response["OutputLocation"] == f"s3://{bucket}/results/first-request.out"
    assert response["FailureLocation"] == f"s3://{bucket}/failures/first-request-error.out"
    assert not exists(s3, response["OutputLocation"])  # the model is still sleeping
    answer = json.loads(wait_for_object(s3, response["OutputLocation"]))
    assert answer == {"echo": {"x": 1, "sleep": 0.5}, "content_type": "application/json"}
    assert not exists(s3, response["FailureLocation"])


def test_inline_body_and_generated_inference_id(clients: Any, echo: Any) -> None:
    _, runtime, s3 = clients
    name, bucket, _ = echo
    response = runtime.invoke_endpoint_async(
        EndpointName=name, Body=json.dumps({"inline": True}).encode(), ContentType="text/json"
    )
    inference_id = response["InferenceId"]
    assert response["OutputLocation"] == f"s3://{bucket}/results/{inference_id}.out"
    answer = json.loads(wait_for_object(s3, response["OutputLocation"]))
    assert answer == {"echo": {"inline": True}, "content_type": "text/json"}


def test_input_object_content_type_stands_in_for_a_missing_content_type(
    clients: Any, echo: Any
) -> None:
    """The SageMaker SDK's `predict_async` uploads its serialized input with a Content-Type
    and sends InvokeEndpointAsync without one; the model must see the object's type."""
    _, runtime, s3 = clients
    name, bucket, _ = echo
    s3.put_object(
        Bucket=bucket, Key="inputs/typed", Body=b'{"typed": 1}', ContentType="text/x-typed"
    )
    source = f"s3://{bucket}/inputs/typed"
    untyped = runtime.invoke_endpoint_async(EndpointName=name, InputLocation=source)
    typed = runtime.invoke_endpoint_async(
        EndpointName=name, InputLocation=source, ContentType="application/json"
    )
    answer = json.loads(wait_for_object(s3, untyped["OutputLocation"]))
    assert answer == {"echo": {"typed": 1}, "content_type": "text/x-typed"}
    answer = json.loads(wait_for_object(s3, typed["OutputLocation"]))
    assert answer["content_type"] == "application/json"


def test_model_failure_goes_to_the_failure_path(clients: Any, echo: Any) -> None:
    _, runtime, s3 = clients
    name, bucket, _ = echo
    source = put_input(s3, bucket, "inputs/bad.json", {"fail": "on purpose"})
    response = runtime.invoke_endpoint_async(EndpointName=name, InputLocation=source)
    error = wait_for_object(s3, response["FailureLocation"]).decode()
    assert "asked to fail: on purpose" in error
    assert not exists(s3, response["OutputLocation"])


def test_precise_errors(clients: Any, echo: Any) -> None:
    sm, runtime, _ = clients
    name, bucket, model = echo

    def refused(call: Any, **kwargs: Any) -> dict[str, Any]:
        with pytest.raises(ClientError) as caught:
            call(**kwargs)
        return dict(caught.value.response)

    missing = refused(
        runtime.invoke_endpoint_async,
        EndpointName=name,
        InputLocation=f"s3://{bucket}/inputs/nothing-here.json",
    )
    assert missing["Error"]["Code"] == "ValidationError"
    assert f"s3://{bucket}/inputs/nothing-here.json" in missing["Error"]["Message"]

    too_big = refused(runtime.invoke_endpoint_async, EndpointName=name, Body=b"x" * 128_001)
    assert too_big["Error"]["Code"] == "ValidationError"
    assert "128000 bytes" in too_big["Error"]["Message"]

    long_ttl = refused(
        runtime.invoke_endpoint_async, EndpointName=name, Body=b"{}", RequestTTLSeconds=21601
    )
    assert "less than or equal to 21600" in long_ttl["Error"]["Message"]

    realtime = refused(
        runtime.invoke_endpoint, EndpointName=name, Body=b"{}", ContentType="application/json"
    )
    assert realtime["Error"]["Code"] == "ValidationError"
    assert "InvokeEndpointAsync" in realtime["Error"]["Message"]

    unknown = refused(runtime.invoke_endpoint_async, EndpointName="no-such-endpoint", Body=b"{}")
    assert unknown["Error"]["Message"] == (
        "Endpoint no-such-endpoint of account 123456789012 not found."
    )

    for path in ("s3://", "s3://../escape", "file:///etc/passwd", "s3://bucket/a/../../b"):
        bad = refused(
            sm.create_endpoint_config,
            EndpointConfigName=unique("bad"),
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model_name(sm, name),
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": path}},
        )
        assert bad["Error"]["Code"] == "ValidationException", path

    plain = deploy(sm, model)
    not_async = refused(runtime.invoke_endpoint_async, EndpointName=plain, Body=b"{}")
    assert not_async["Error"]["Code"] == "ValidationError"
    assert "not configured for asynchronous inference" in not_async["Error"]["Message"]


def model_name(sm: Any, endpoint: str) -> str:
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint)
    return str(config["ProductionVariants"][0]["ModelName"])


def test_zero_instances_keep_requests_waiting_until_scaled_up(clients: Any, echo: Any) -> None:
    sm, runtime, s3 = clients
    _, _, model = echo
    name, _ = deploy_async(sm, s3, model)
    cloudwatch = boto3.client("cloudwatch")

    def scale(count: int) -> None:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[
                {"VariantName": "AllTraffic", "DesiredInstanceCount": count}
            ],
        )
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
        )

    def backlog(metric: str) -> float:
        now = time.time()
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[{"Name": "EndpointName", "Value": name}],
            StartTime=now - 120,
            EndTime=now + 60,
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        return max((p["Maximum"] for p in points), default=0.0)

    scale(0)
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == 0
    outputs = [
        runtime.invoke_endpoint_async(EndpointName=name, Body=json.dumps({"n": n}).encode())[
            "OutputLocation"
        ]
        for n in range(5)
    ]
    assert eventually(lambda: backlog("ApproximateBacklogSize") == 5)
    assert backlog("HasBacklogWithoutCapacity") == 1
    assert backlog("ApproximateAgeOfOldestRequest") >= 0
    assert not any(exists(s3, uri) for uri in outputs)
    listed = cloudwatch.list_metrics(
        Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": name}]
    )["Metrics"]
    assert {m["MetricName"] for m in listed} >= {
        "ApproximateBacklogSize",
        "ApproximateBacklogSizePerInstance",
        "ApproximateAgeOfOldestRequest",
    }

    scale(1)
    answers = [json.loads(wait_for_object(s3, uri)) for uri in outputs]
    assert [a["echo"]["n"] for a in answers] == list(range(5))
