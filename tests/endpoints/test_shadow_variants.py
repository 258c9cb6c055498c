"""Shadow variants: production answers as before while a share of its traffic (the shadow's
weight relative to production's) is copied to the shadow, recorded and never returned."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from support.deploy import (
    SKLEARN_IMAGE,
    create_model,
    deploy,
    store_code_model,
    unique,
    wait_for_status,
)
from support.server import SabioServer

BOTH = """\
import json, os, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    request = json.loads(body)
    variant = os.environ["SAGEMAKER_VARIANT_NAME"]
    if variant == "Shadow":
        if request.get("fail"):
            raise RuntimeError("the shadow model is broken")
        time.sleep(request.get("shadow_sleep", 0))
    return json.dumps({"variant": variant, "n": request.get("n")}), "application/json"
"""
CAPTURE = "s3://monitoring/shadow-capture"


def variant(name: str, model: str, weight: float) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InstanceType": "ml.t2.medium",
        "InitialInstanceCount": 1,
        "InitialVariantWeight": weight,
    }


@pytest.fixture(scope="module")
def endpoint(server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = store_code_model(server, tmp_path_factory.mktemp("shadow"), BOTH, "shadow")
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    name = unique("shadow")
    return deploy(
        sm,
        uri,
        name=name,
        variants=[variant("Prod", name, 1.0)],
        ShadowProductionVariants=[variant("Shadow", name, 0.5)],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": CAPTURE,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )


def invoke(runtime: Any, name: str, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=json.dumps(request)
    )
    return response["InvokedProductionVariant"], json.loads(response["Body"].read())


def metric(name: str, variant_name: str, metric_name: str) -> float:
    now = datetime.now(UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric_name,
        Dimensions=[
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": variant_name},
        ],
        StartTime=now - timedelta(minutes=20),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def settled(name: str, variant_name: str, metric_name: str) -> float:
    """A metric once copies still in flight have been answered."""
    last, deadline = -1.0, time.monotonic() + 10
    while time.monotonic() < deadline:
        value = metric(name, variant_name, metric_name)
        if value == last:
            return value
        last = value
        time.sleep(0.3)
    return last


def test_shadow_gets_its_share_and_production_answers_alone(
    server: SabioServer, endpoint: str, sm: Any, runtime: Any
) -> None:
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["Prod"]
    [shadow] = described["ShadowProductionVariants"]
    assert shadow["VariantName"] == "Shadow"
    assert shadow["CurrentWeight"] == 0.5
    assert shadow["CurrentInstanceCount"] == 1
    assert shadow["DeployedImages"][0]["SpecifiedImage"] == SKLEARN_IMAGE

    calls = 200
    for n in range(calls):
        variant_name, answer = invoke(runtime, endpoint, {"n": n})
        assert (variant_name, answer) == ("Prod", {"variant": "Prod", "n": n})
    assert settled(endpoint, "Prod", "Invocations") == calls
    copied = settled(endpoint, "Shadow", "Invocations")
    # Binomial(200, 0.5): mean 100, standard deviation about 7; these bounds are 5 sigma.
    assert 65 <= copied <= 135

    # The shadow's answers are captured under its own name, and never returned.
    store = LocalArtifactStore(server.home / "artifacts")
    prefix = f"{CAPTURE}/{endpoint}/Shadow/"
    deadline = time.monotonic() + 15
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(records) < copied:
        records = []
        for info in store.list(parse(prefix)):
            with store.open_read(info.uri) as stream:
                records += [json.loads(line) for line in stream.read().decode().splitlines()]
        time.sleep(0.2)
    assert len(records) == copied
    outputs = [
        json.loads(base64.b64decode(r["captureData"]["endpointOutput"]["data"])) for r in records
    ]
    assert {o["variant"] for o in outputs} == {"Shadow"}


def test_a_failing_or_slow_shadow_never_touches_the_client(endpoint: str, runtime: Any) -> None:
    errors_before = settled(endpoint, "Shadow", "Invocation5XXErrors")
    for n in range(20):
        assert invoke(runtime, endpoint, {"n": n, "fail": True}) == (
            "Prod",
            {"variant": "Prod", "n": n},
        )
    assert settled(endpoint, "Shadow", "Invocation5XXErrors") > errors_before
    assert settled(endpoint, "Prod", "Invocation5XXErrors") == 0
    started = time.monotonic()
    for n in range(4):
        invoke(runtime, endpoint, {"n": n, "shadow_sleep": 2})
    assert time.monotonic() - started < 4  # a copy waited for would take 2 s each


def test_shadow_variants_cannot_be_targeted_and_can_be_reweighted(
    endpoint: str, sm: Any, runtime: Any
) -> None:
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body="{}", TargetVariant="Shadow"
        )
    assert raised.value.response["Error"]["Code"] == "ValidationError"

    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "Shadow", "DesiredWeight": 0.0}],
    )
    described = wait_for_status(sm, endpoint, {"InService", "Failed"})
    assert described["ShadowProductionVariants"][0]["CurrentWeight"] == 0.0
    before = settled(endpoint, "Shadow", "Invocations")
    for n in range(20):
        invoke(runtime, endpoint, {"n": n})
    assert settled(endpoint, "Shadow", "Invocations") == before


def test_shadow_layout_is_validated(server: SabioServer, sm: Any, tmp_path: Path) -> None:
    model = create_model(sm, store_code_model(server, tmp_path, BOTH, "shadow"), "shadow")
    cases = [
        ([variant("A", model, 1), variant("B", model, 1)], [variant("S", model, 1)], "exactly one"),
        ([variant("A", model, 1)], [variant("A", model, 1)], "unique"),
    ]
    for production, shadows, message in cases:
        with pytest.raises(ClientError) as raised:
            sm.create_endpoint_config(
                EndpointConfigName=unique("bad"),
                ProductionVariants=production,
                ShadowProductionVariants=shadows,
            )
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert message in raised.value.response["Error"]["Message"]
