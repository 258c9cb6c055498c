"""What an asynchronous endpoint is not, against a live server: it answers neither
InvokeEndpoint nor InvokeEndpointWithResponseStream, it publishes no `Invocations`, and
UpdateEndpoint may change its AsyncInferenceConfig (queued requests are then served by the new
config) but never take it away."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from asyncinference.async_helpers import deploy_async, echo_model, wait_for_object
from support.deploy import unique
from support.server import SabioServer


@pytest.fixture(scope="module")
def endpoint(async_server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One async endpoint (and its bucket) for the module."""
    sm = boto3.client("sagemaker", endpoint_url=async_server.url)
    s3 = boto3.client("s3", endpoint_url=async_server.url)
    model = echo_model(async_server, tmp_path_factory.mktemp("rules"))
    return deploy_async(sm, s3, model, ClientConfig={"MaxConcurrentInvocationsPerInstance": 1})


def refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return dict(caught.value.response)


def test_realtime_and_streaming_invocations_are_refused(clients: Any, endpoint: Any) -> None:
    _, runtime, _ = clients
    name, _ = endpoint
    expected = (
        f"Endpoint {name} of account 123456789012 is configured for asynchronous inference. "
        "Use InvokeEndpointAsync."
    )
    for call in (runtime.invoke_endpoint, runtime.invoke_endpoint_with_response_stream):
        error = refused(call, EndpointName=name, Body=b"{}", ContentType="application/json")
        assert error["Error"] == {"Code": "ValidationError", "Message": expected}
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_async_invocations_publish_no_invocations_metric(clients: Any, endpoint: Any) -> None:
    _, runtime, s3 = clients
    name, _ = endpoint
    answered = runtime.invoke_endpoint_async(EndpointName=name, Body=b'{"metric": 1}')
    wait_for_object(s3, answered["OutputLocation"])
    cloudwatch = boto3.client("cloudwatch")
    dimensions = [
        {"Name": "EndpointName", "Value": name},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    listed = cloudwatch.list_metrics(Namespace="AWS/SageMaker", Dimensions=dimensions)
    names = {m["MetricName"] for m in listed["Metrics"] if len(m["Dimensions"]) == 2}
    assert {"ModelLatency", "Invocation4XXErrors", "Invocation5XXErrors"} <= names
    assert not names & {"Invocations", "InvocationsPerInstance", "OverheadLatency"}

    def samples(metric: str) -> float:
        now = time.time()
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=dimensions,
            StartTime=now - 300,
            EndTime=now + 60,
            Period=60,
            Statistics=["SampleCount"],
        )["Datapoints"]
        return sum(p["SampleCount"] for p in points)

    assert samples("ModelLatency") >= 1
    assert samples("Invocations") == 0
    assert samples("InvocationsPerInstance") == 0


def test_update_changes_the_async_config_and_never_drops_it(clients: Any, endpoint: Any) -> None:
    sm, runtime, s3 = clients
    name, bucket = endpoint
    described = sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": described["ModelName"],
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }

    def config(**extra: Any) -> str:
        config_name = unique("cfg")
        sm.create_endpoint_config(
            EndpointConfigName=config_name, ProductionVariants=[variant], **extra
        )
        return config_name

    realtime = config()
    error = refused(sm.update_endpoint, EndpointName=name, EndpointConfigName=realtime)
    assert error["Error"]["Code"] == "ValidationException"
    assert error["Error"]["Message"].startswith(
        f"The AsyncInferenceConfig parameter cannot be removed from this endpoint {name}."
    )
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"

    # Requests wait at zero instances, then the update brings a config with a new output path.
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}],
    )
    wait_in_service(sm, name)
    queued = [
        runtime.invoke_endpoint_async(EndpointName=name, Body=json.dumps({"n": n}).encode())
        for n in range(3)
    ]
    moved = {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 3},
        "OutputConfig": {"S3OutputPath": f"s3://{bucket}/moved"},
    }
    sm.update_endpoint(EndpointName=name, EndpointConfigName=config(AsyncInferenceConfig=moved))
    wait_in_service(sm, name)
    for n, request in enumerate(queued):
        assert request["OutputLocation"].startswith(f"s3://{bucket}/results/")
        assert json.loads(wait_for_object(s3, request["OutputLocation"]))["echo"] == {"n": n}
    described = sm.describe_endpoint(EndpointName=name)
    assert described["AsyncInferenceConfig"] == moved
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    later = runtime.invoke_endpoint_async(EndpointName=name, Body=b'{"later": true}')
    assert later["OutputLocation"].startswith(f"s3://{bucket}/moved/")
    assert "FailureLocation" not in later
    assert json.loads(wait_for_object(s3, later["OutputLocation"]))["echo"] == {"later": True}

    # And a real-time endpoint cannot become asynchronous.
    plain = unique("plain")
    sm.create_endpoint(EndpointName=plain, EndpointConfigName=realtime)
    wait_in_service(sm, plain)
    error = refused(
        sm.update_endpoint,
        EndpointName=plain,
        EndpointConfigName=config(AsyncInferenceConfig=moved),
    )
    assert error["Error"]["Message"].startswith(
        f"The AsyncInferenceConfig parameter cannot be added to this endpoint {plain}."
    )


def wait_in_service(sm: Any, name: str) -> None:
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
