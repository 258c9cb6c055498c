"""SageMaker's endpoint metrics through a real boto3 `cloudwatch` client (which speaks
smithy-rpc-v2-cbor) and the Prometheus page, after real invocations of a deployed model."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from support.deploy import deploy, store_archive, unique
from support.models import model_archive
from support.server import SabioServer

# A model that answers 400 for "bad" (an error carrying status_code, as the SageMaker toolkit's
# do) and 500 for "boom" (any other exception).
INFERENCE_PY = """\
import json

class BadInput(Exception):
    status_code = 400

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    data = json.loads(body)
    if data == "bad":
        raise BadInput("bad input")
    if data == "boom":
        raise RuntimeError("boom")
    return data

def predict_fn(data, model):
    return data

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""

OK, CLIENT_ERRORS, SERVER_ERRORS = 12, 3, 2
TOTAL = OK + CLIENT_ERRORS + SERVER_ERRORS
NAMESPACE = "AWS/SageMaker"


@pytest.fixture(scope="module")
def endpoint(server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A deployed endpoint invoked TOTAL times: OK successes, then the failures."""
    archive = model_archive(
        tmp_path_factory.mktemp("cw") / "model.tar.gz",
        {"code/inference.py": INFERENCE_PY},
        with_model=False,
    )
    uri = store_archive(server, archive, f"{unique('cw')}/model.tar.gz")
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url)
    name = deploy(sm, uri, name=unique("cw"))
    bodies = [b"[1, 2]"] * OK + [b'"bad"'] * CLIENT_ERRORS + [b'"boom"'] * SERVER_ERRORS
    for body in bodies:
        try:
            runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=body)
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ModelError"
    # Rejected by the router before any model sees them: not counted.
    for kwargs in ({"EndpointName": name, "TargetVariant": "Nope"}, {"EndpointName": "absent"}):
        with pytest.raises(ClientError):
            runtime.invoke_endpoint(ContentType="application/json", Body=b"[1]", **kwargs)
    return name


@pytest.fixture
def cloudwatch(endpoint_url: str) -> Any:
    return boto3.client("cloudwatch")


def dimensions(name: str) -> list[dict[str, str]]:
    return [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]


def window() -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {"StartTime": now - timedelta(minutes=20), "EndTime": now + timedelta(minutes=5)}


def statistics(cloudwatch: Any, name: str, metric: str, **extra: Any) -> dict[str, Any]:
    response: dict[str, Any] = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=dimensions(name),
        Period=3600,
        Statistics=["SampleCount", "Average", "Sum", "Minimum", "Maximum"],
        **{**window(), **extra},
    )
    return response


def single(response: dict[str, Any]) -> dict[str, Any]:
    (datapoint,) = response["Datapoints"]
    return datapoint  # type: ignore[no-any-return]


def test_invocation_and_error_counts(cloudwatch: Any, endpoint: str) -> None:
    invocations = statistics(cloudwatch, endpoint, "Invocations")
    assert invocations["Label"] == "Invocations"
    point = single(invocations)
    assert point["Sum"] == TOTAL
    assert point["SampleCount"] == TOTAL
    assert point["Unit"] == "None"
    assert isinstance(point["Timestamp"], datetime)
    assert point["Timestamp"].second == 0

    server_errors = single(statistics(cloudwatch, endpoint, "Invocation5XXErrors"))
    assert server_errors["Sum"] == SERVER_ERRORS
    assert server_errors["Average"] == pytest.approx(SERVER_ERRORS / TOTAL)
    assert (server_errors["Minimum"], server_errors["Maximum"]) == (0, 1)
    assert single(statistics(cloudwatch, endpoint, "Invocation4XXErrors"))["Sum"] == CLIENT_ERRORS
    per_instance = single(statistics(cloudwatch, endpoint, "InvocationsPerInstance"))
    assert per_instance["Sum"] == TOTAL  # one instance


def test_latencies_in_microseconds(cloudwatch: Any, endpoint: str) -> None:
    for metric in ("ModelLatency", "OverheadLatency"):
        point = single(statistics(cloudwatch, endpoint, metric))
        assert point["Unit"] == "Microseconds"
        assert point["SampleCount"] == TOTAL
        assert 0 < point["Minimum"] <= point["Average"] <= point["Maximum"]
    model = single(statistics(cloudwatch, endpoint, "ModelLatency"))
    assert 50 < model["Average"] < 5_000_000  # a local call: well over 50 µs, under 5 s
    # Asking for another unit finds no data, as CloudWatch answers.
    assert statistics(cloudwatch, endpoint, "ModelLatency", Unit="Seconds")["Datapoints"] == []


def test_unknown_metrics_and_dimensions_have_no_datapoints(cloudwatch: Any, endpoint: str) -> None:
    only_endpoint = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName="Invocations",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        Period=60,
        Statistics=["Sum"],
        **window(),
    )
    assert only_endpoint["Datapoints"] == []
    assert statistics(cloudwatch, endpoint, "CPUUtilization")["Datapoints"] == []
    assert statistics(cloudwatch, "absent", "Invocations")["Datapoints"] == []


def test_get_metric_data(cloudwatch: Any, endpoint: str) -> None:
    def query(query_id: str, metric: str, stat: str, **extra: Any) -> dict[str, Any]:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": dimensions(endpoint),
                },
                "Period": 60,
                "Stat": stat,
            },
            **extra,
        }

    response = cloudwatch.get_metric_data(
        MetricDataQueries=[
            query("calls", "Invocations", "Sum"),
            query("model", "ModelLatency", "Average", Label="model µs"),
            query("hidden", "Invocations", "Sum", ReturnData=False),
        ],
        **window(),
    )
    calls, model = response["MetricDataResults"]
    assert (calls["Id"], calls["Label"], calls["StatusCode"]) == (
        "calls",
        "Invocations",
        "Complete",
    )
    assert sum(calls["Values"]) == TOTAL
    assert calls["Timestamps"] == sorted(calls["Timestamps"], reverse=True)
    assert all(t.second == 0 for t in calls["Timestamps"])
    assert model["Label"] == "model µs"
    assert all(value > 0 for value in model["Values"])
    assert "NextToken" not in response


def test_get_metric_data_pages_by_max_datapoints(cloudwatch: Any, endpoint: str) -> None:
    queries = [
        {
            "Id": f"q{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": dimensions(endpoint),
                },
                "Period": 3600,
                "Stat": "Sum",
            },
        }
        for index, metric in enumerate(
            ["Invocations", "Invocation4XXErrors", "Invocation5XXErrors"]
        )
    ]
    pages = list(
        cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries,
            MaxDatapoints=1,
            ScanBy="TimestampAscending",
            **window(),
        )
    )
    assert len(pages) == 3
    sums = {r["Id"]: r["Values"] for page in pages for r in page["MetricDataResults"]}
    assert sums == {"q0": [TOTAL], "q1": [CLIENT_ERRORS], "q2": [SERVER_ERRORS]}


def test_list_metrics(cloudwatch: Any, endpoint: str) -> None:
    listed = cloudwatch.list_metrics(
        Namespace=NAMESPACE, Dimensions=[{"Name": "EndpointName", "Value": endpoint}]
    )["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == sorted(
        [
            "Invocations",
            "Invocation4XXErrors",
            "Invocation5XXErrors",
            "ModelLatency",
            "OverheadLatency",
            "InvocationsPerInstance",
        ]
    )
    for metric in listed:
        assert metric["Namespace"] == NAMESPACE
        assert sorted(metric["Dimensions"], key=lambda d: d["Name"]) == dimensions(endpoint)
    only = cloudwatch.list_metrics(MetricName="ModelLatency", Dimensions=[{"Name": "VariantName"}])
    assert any(dimensions(endpoint) == m["Dimensions"] for m in only["Metrics"])
    assert {m["MetricName"] for m in only["Metrics"]} == {"ModelLatency"}
    assert cloudwatch.list_metrics(Namespace="AWS/EC2")["Metrics"] == []
    everything = [
        m for page in cloudwatch.get_paginator("list_metrics").paginate() for m in page["Metrics"]
    ]
    assert len(everything) >= 6


def test_errors_carry_cloudwatch_codes(cloudwatch: Any, endpoint: str) -> None:
    base = {
        "Namespace": NAMESPACE,
        "MetricName": "Invocations",
        "Dimensions": dimensions(endpoint),
        **window(),
    }
    with pytest.raises(cloudwatch.exceptions.InvalidParameterValueException):
        cloudwatch.get_metric_statistics(Period=61, Statistics=["Sum"], **base)
    with pytest.raises(ClientError) as raised:
        cloudwatch.get_metric_statistics(Period=60, **base)
    assert raised.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as raised:
        cloudwatch.get_metric_statistics(Period=1, Statistics=["Sum"], **base)
    assert "exceeds the limit of 1440" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "e1", "Expression": "SUM(METRICS())"}], **window()
        )
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "Expression" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        cloudwatch.put_metric_data(Namespace="Mine", MetricData=[{"MetricName": "x", "Value": 1}])
    assert "does not implement" in raised.value.response["Error"]["Message"]


def post(server: SabioServer, path: str, body: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(server.url + path, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, json.loads(response.read())


def test_json_protocol(server: SabioServer, endpoint: str) -> None:
    now = time.time()
    status, headers, body = post(
        server,
        "/",
        json.dumps(
            {
                "Namespace": NAMESPACE,
                "MetricName": "Invocations",
                "Dimensions": dimensions(endpoint),
                "StartTime": now - 1200,
                "EndTime": now + 300,
                "Period": 3600,
                "Statistics": ["Sum"],
            }
        ).encode(),
        {
            "X-Amz-Target": "GraniteServiceVersion20100801.GetMetricStatistics",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    (point,) = body["Datapoints"]
    assert point["Sum"] == TOTAL
    assert isinstance(point["Timestamp"], int | float)


def test_prometheus_metrics(server: SabioServer, endpoint: str) -> None:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        lines = set(response.read().decode().splitlines())
    labels = f'endpoint="{endpoint}",variant="AllTraffic"'
    assert f"sabio_invocations_total{{{labels}}} {TOTAL}" in lines
    assert f'sabio_invocation_errors_total{{{labels},class="4xx"}} {CLIENT_ERRORS}' in lines
    assert f'sabio_invocation_errors_total{{{labels},class="5xx"}} {SERVER_ERRORS}' in lines
    assert f"sabio_model_latency_seconds_count{{{labels}}} {TOTAL}" in lines
    assert f'sabio_model_latency_seconds_bucket{{{labels},le="+Inf"}} {TOTAL}' in lines
    assert f"sabio_variant_instances{{{labels}}} 1" in lines
