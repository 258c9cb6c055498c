"""Multi-model endpoints: one model per archive under the ModelDataUrl prefix, loaded on the first
invocation that names it in TargetModel, unloaded least recently used first beyond the cap, with
SageMaker's errors and model loading metrics."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from support.deploy import ROLE, SKLEARN_IMAGE, deploy, store_archive, store_code_model, unique
from support.models import model_archive
from support.server import SabioServer, running_server

NAMED = """\
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "name.txt")) as handle:
        return handle.read()

def transform_fn(model, body, content_type, accept):
    return json.dumps({"model": model, "pid": os.getpid()}), "application/json"
"""

SINGLE = """\
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return body, "application/json"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """A server that keeps one model loaded per multi-model variant."""
    env = {"SABIO_MME_MAX_LOADED": "1", "SABIO_WORKER_STOP_GRACE_SECONDS": "2"}
    with running_server(tmp_path_factory.mktemp("mme"), env) as running:
        yield running


@pytest.fixture(scope="module")
def endpoint(server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A multi-model endpoint over a prefix holding `a.tar.gz` and `nested/b.tar.gz`."""
    work = tmp_path_factory.mktemp("archives")
    prefix = unique("mme")
    for key, name in (("a.tar.gz", "a"), ("nested/b.tar.gz", "b")):
        files = {"code/inference.py": NAMED, "name.txt": name}
        archive = model_archive(work / f"{name}.tar.gz", files, with_model=False)
        store_archive(server, archive, f"{prefix}/{key}")
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    name = unique("mme")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "Mode": "MultiModel",
            "ModelDataUrl": f"s3://models/{prefix}/",
        },
    )
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    return name


@pytest.fixture
def runtime(server: SabioServer) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=server.url)


def invoke(runtime: Any, endpoint: str, target: str) -> dict[str, Any]:
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, Body=b"{}", ContentType="application/json", TargetModel=target
    )
    answer: dict[str, Any] = json.loads(response["Body"].read())
    return answer


def test_each_target_model_is_answered_by_its_own_model(runtime: Any, endpoint: str) -> None:
    first = invoke(runtime, endpoint, "a.tar.gz")
    assert first["model"] == "a"
    assert invoke(runtime, endpoint, "a.tar.gz") == first  # still loaded: the same worker
    assert invoke(runtime, endpoint, "nested/b.tar.gz")["model"] == "b"
    # With one model allowed, loading b unloaded a: it is loaded again, in a new worker.
    again = invoke(runtime, endpoint, "a.tar.gz")
    assert again["model"] == "a"
    assert again["pid"] != first["pid"]


def test_a_target_model_not_under_the_prefix_is_refused(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as missing:
        invoke(runtime, endpoint, "absent.tar.gz")
    error = missing.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert "Failed to download model data" in error["Message"]
    assert "absent.tar.gz" in error["Message"]
    for escaping in ("../a.tar.gz", "nested/../../a.tar.gz", "/a.tar.gz"):
        with pytest.raises(ClientError) as refused:
            invoke(runtime, endpoint, escaping)
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert "TargetModel" in refused.value.response["Error"]["Message"]


def test_a_multi_model_endpoint_needs_a_target_model(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"{}", ContentType="application/json")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationError"
    request_id = raised.value.response["ResponseMetadata"]["RequestId"]
    assert error["Message"] == f"Request {request_id} is missing a target model header."


def test_a_single_model_endpoint_refuses_a_target_model(
    server: SabioServer, runtime: Any, tmp_path: Path
) -> None:
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    name = deploy(sm, store_code_model(server, tmp_path, SINGLE, "single"))
    with pytest.raises(ClientError) as raised:
        invoke(runtime, name, "a.tar.gz")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert error["Message"] == (
        f"Endpoint {name} is not a multi-model endpoint and does not support target model header."
    )


def test_model_loading_metrics(server: SabioServer, runtime: Any, endpoint: str) -> None:
    invoke(runtime, endpoint, "a.tar.gz")
    invoke(runtime, endpoint, "a.tar.gz")
    invoke(runtime, endpoint, "nested/b.tar.gz")
    cloudwatch = boto3.client("cloudwatch", endpoint_url=server.url)
    now = datetime.now(UTC)

    def statistics(metric: str) -> dict[str, Any]:
        answer = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5),
            Period=3600,
            Statistics=["SampleCount", "Sum", "Maximum", "Minimum"],
        )
        points = answer["Datapoints"]
        assert len(points) == 1, (metric, answer)
        point: dict[str, Any] = points[0]
        return point

    hits = statistics("ModelCacheHit")
    assert hits["Unit"] == "None"
    assert hits["Sum"] >= 1 and hits["Minimum"] == 0 and hits["Maximum"] == 1
    assert hits["SampleCount"] == statistics("Invocations")["SampleCount"]
    for metric in ("ModelLoadingWaitTime", "ModelLoadingTime", "ModelDownloadingTime"):
        loading = statistics(metric)
        assert loading["Unit"] == "Microseconds"
        assert loading["SampleCount"] >= 2 and loading["Minimum"] > 0
    unloading = statistics("ModelUnloadingTime")
    assert unloading["Unit"] == "Microseconds" and unloading["SampleCount"] >= 1
    loaded = statistics("LoadedModelCount")
    assert loaded["Unit"] == "None" and loaded["Maximum"] == 1
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    labels = f'{{endpoint="{endpoint}",variant="AllTraffic"}}'
    assert f"sabio_model_cache_hits_total{labels} {int(hits['Sum'])}" in text
    assert f"sabio_model_loading_seconds_count{labels} " in text


def test_concurrent_first_invocations_share_one_load(runtime: Any, endpoint: str) -> None:
    invoke(runtime, endpoint, "nested/b.tar.gz")  # so that a is not loaded
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: invoke(runtime, endpoint, "a.tar.gz"), range(4)))
    assert {a["model"] for a in answers} == {"a"}
    assert len({a["pid"] for a in answers}) == 1


def test_serverless_variants_refuse_multi_model_models(server: SabioServer, endpoint: str) -> None:
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    serverless = {"MemorySizeInMB": 1024, "MaxConcurrency": 1}
    with pytest.raises(ClientError) as raised:
        sm.create_endpoint_config(
            EndpointConfigName=unique("cfg"),
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": endpoint, "ServerlessConfig": serverless}
            ],
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "MultiModel" in raised.value.response["Error"]["Message"]


def test_asynchronous_endpoints_refuse_multi_model_models(
    server: SabioServer, endpoint: str
) -> None:
    """InvokeEndpointAsync has no TargetModel, so an asynchronous multi-model endpoint could
    never be invoked: its configuration is refused."""
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    with pytest.raises(ClientError) as raised:
        sm.create_endpoint_config(
            EndpointConfigName=unique("cfg"),
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": endpoint,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://async-out/results"}},
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "asynchronous inference" in raised.value.response["Error"]["Message"]
