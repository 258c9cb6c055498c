"""The per-variant metrics of an asynchronous endpoint (`InvocationsProcesssed`, the failure
counts, `ExpiredRequests`, `TimeInBacklog`, `TotalProcessingTime`, `RequestDownloadLatency`,
`ResponseUploadLatency`), read with a boto3 `cloudwatch` client and from `/metrics` after
requests that succeed, one whose input object is gone when its turn comes, one the model fails,
one that outlives its RequestTTLSeconds in the queue, and error notifications to a topic that
does not exist."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import update

from asyncinference.async_helpers import (
    deploy_async,
    echo_model,
    eventually,
    put_input,
    wait_for_object,
)
from sabio.asyncinference.variant_metrics import AsyncVariantMetrics
from sabio.config import Settings
from sabio.store.database import connect
from sabio.store.rows import AsyncInvocationRow
from support.deploy import unique
from support.server import SabioServer

NAMESPACE = "AWS/SageMaker"
MISSING_TOPIC = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
SUCCESSES = 4  # the first one sleeps, so the others wait in the backlog behind it
COUNTS = {
    "InvocationsProcesssed": SUCCESSES + 2,
    "InvocationFailures": 2,
    "RequestDownloadFailures": 1,
    "NotificationFailures": 2,
    "ExpiredRequests": 1,
}


def statistics(cloudwatch: Any, dimensions: list[dict[str, str]], metric: str) -> dict[str, Any]:
    now = time.time()
    points = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=dimensions,
        StartTime=now - 600,
        EndTime=now + 60,
        Period=3600,
        Statistics=["Sum", "SampleCount", "Minimum", "Maximum", "Average"],
    )["Datapoints"]
    assert len(points) <= 1
    return dict(points[0]) if points else {}


def prometheus(server: SabioServer, family: str, endpoint: str) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    labels = f'{{endpoint="{endpoint}",variant="AllTraffic"}}'
    found = re.search(rf"^{re.escape(family + labels)} (\S+)$", text, re.MULTILINE)
    assert found, f"{family}{labels} is not in /metrics"
    return float(found.group(1))


def outlive_ttl(server: SabioServer, inference_id: str) -> None:
    """Sixty seconds pass for one queued request: its deadline is moved instead of waiting."""
    engine = connect(Settings(home=server.home).resolved_database_url)
    try:
        with engine.begin() as connection:
            moved = connection.execute(
                update(AsyncInvocationRow)
                .where(AsyncInvocationRow.inference_id == inference_id)
                .values(expires_at=AsyncInvocationRow.received_at - 1)
            )
        assert moved.rowcount == 1, "the request left the queue before its deadline was moved"
    finally:
        engine.dispose()


def test_requests_failures_and_times_per_variant(
    async_server: SabioServer, clients: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    sm, runtime, s3 = clients
    cloudwatch = boto3.client("cloudwatch")
    bucket = unique("async-metrics")
    name, _ = deploy_async(
        sm,
        s3,
        echo_model(async_server, tmp_path),
        bucket=bucket,
        OutputConfig={
            "S3OutputPath": f"s3://{bucket}/results",
            "S3FailurePath": f"s3://{bucket}/failures",
            "NotificationConfig": {"ErrorTopic": MISSING_TOPIC},
        },
        ClientConfig={"MaxConcurrentInvocationsPerInstance": 1},
    )
    began = time.time()

    def invoke(key: str, payload: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = runtime.invoke_endpoint_async(
            EndpointName=name,
            ContentType="application/json",
            InputLocation=put_input(s3, bucket, f"inputs/{key}.json", payload),
        )
        return response

    answers = [invoke("sleeps", {"sleep": 1.0})["OutputLocation"]]
    # Queued behind the sleeping one, it runs out of time before its turn comes.
    late = runtime.invoke_endpoint_async(EndpointName=name, Body=b"{}", RequestTTLSeconds=60)
    outlive_ttl(async_server, late["InferenceId"])
    # Its input is there when it is accepted, and gone when its turn comes.
    gone = invoke("gone", {"n": "gone"})
    s3.delete_object(Bucket=bucket, Key="inputs/gone.json")
    failed = invoke("fails", {"fail": "on purpose"})
    answers += [invoke(f"n{n}", {"n": n})["OutputLocation"] for n in range(SUCCESSES - 1)]
    for uri in answers:
        assert b"echo" in wait_for_object(s3, uri)
    assert b"no longer exists" in wait_for_object(s3, gone["FailureLocation"])
    assert b"on purpose" in wait_for_object(s3, failed["FailureLocation"])
    assert b"RequestTTLSeconds" in wait_for_object(s3, late["FailureLocation"])

    both = [
        {"Name": "EndpointName", "Value": name},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]

    def settled() -> bool:
        got = statistics(cloudwatch, both, "InvocationsProcesssed").get("Sum")
        notified = statistics(cloudwatch, both, "NotificationFailures").get("Sum")
        expired = statistics(cloudwatch, both, "ExpiredRequests").get("Sum")
        return got == COUNTS["InvocationsProcesssed"] and notified == 2 and expired == 1

    assert eventually(settled, timeout=10)
    wall_ms = (time.time() - began) * 1000
    for metric, count in COUNTS.items():
        point = statistics(cloudwatch, both, metric)
        assert (point["Sum"], point["SampleCount"], point["Unit"]) == (count, count, "Count")
    assert statistics(cloudwatch, both, "ResponseUploadFailures") == {}
    # As on AWS, the per-variant metrics are not found under the endpoint alone.
    assert statistics(cloudwatch, both[:1], "InvocationsProcesssed") == {}

    backlog = statistics(cloudwatch, both, "TimeInBacklog")
    total = statistics(cloudwatch, both, "TotalProcessingTime")
    # AWS's units: TimeInBacklog in microseconds, TotalProcessingTime in milliseconds.
    assert (backlog["Unit"], total["Unit"]) == ("Microseconds", "Milliseconds")
    for point, per_ms in ((backlog, 1000), (total, 1)):
        assert point["SampleCount"] == COUNTS["InvocationsProcesssed"]
        assert 0 <= point["Minimum"] <= point["Average"] <= point["Maximum"] < wall_ms * per_ms
    # The requests behind the sleeping one waited for most of its second.
    assert backlog["Maximum"] > 500_000
    assert total["Maximum"] >= 1000
    assert total["Sum"] > backlog["Sum"] / 1000

    # Five input objects were read (not the one that was gone, nor the inline body that
    # expired); six answer or error objects were written by the variant.
    download = statistics(cloudwatch, both, "RequestDownloadLatency")
    upload = statistics(cloudwatch, both, "ResponseUploadLatency")
    for point, samples in ((download, SUCCESSES + 1), (upload, COUNTS["InvocationsProcesssed"])):
        assert (point["Unit"], point["SampleCount"]) == ("Microseconds", samples)
        # Local object reads and writes: above zero, and well under a second each.
        assert 0 < point["Minimum"] <= point["Average"] <= point["Maximum"] < 1_000_000
    # Each is a part of its request's total processing time.
    assert download["Sum"] + upload["Sum"] < total["Sum"] * 1000

    now = time.time()
    data = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": metric[0].lower() + metric[1:],
                "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": both},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
            for metric in [*COUNTS, "TimeInBacklog", "ResponseUploadLatency"]
        ],
        StartTime=now - 600,
        EndTime=now + 60,
    )["MetricDataResults"]
    sums = {result["Label"]: sum(result["Values"]) for result in data}
    assert {metric: sums[metric] for metric in COUNTS} == COUNTS
    assert sums["TimeInBacklog"] == pytest.approx(backlog["Sum"])
    assert sums["ResponseUploadLatency"] == pytest.approx(upload["Sum"])

    listed = cloudwatch.list_metrics(
        Namespace=NAMESPACE, Dimensions=[{"Name": "EndpointName", "Value": name}]
    )["Metrics"]
    per_variant = {m["MetricName"] for m in listed if len(m["Dimensions"]) == 2}
    assert {
        *COUNTS,
        "ResponseUploadFailures",
        "TimeInBacklog",
        "TotalProcessingTime",
        "RequestDownloadLatency",
        "ResponseUploadLatency",
    } <= per_variant

    assert prometheus(async_server, "sabio_async_invocations_processed_total", name) == 6
    assert prometheus(async_server, "sabio_async_request_download_failures_total", name) == 1
    assert prometheus(async_server, "sabio_async_invocation_failures_total", name) == 2
    assert prometheus(async_server, "sabio_async_notification_failures_total", name) == 2
    assert prometheus(async_server, "sabio_async_expired_requests_total", name) == 1
    assert prometheus(async_server, "sabio_async_response_upload_failures_total", name) == 0
    assert prometheus(async_server, "sabio_async_time_in_backlog_seconds_count", name) == 6
    waited = prometheus(async_server, "sabio_async_time_in_backlog_seconds_sum", name)
    assert waited == pytest.approx(backlog["Sum"] / 1_000_000)
    took = prometheus(async_server, "sabio_async_total_processing_seconds_sum", name)
    assert waited < took < 6 * wall_ms / 1000
    read = "sabio_async_request_download_latency_seconds"
    assert prometheus(async_server, f"{read}_count", name) == SUCCESSES + 1
    assert prometheus(async_server, f"{read}_sum", name) == pytest.approx(download["Sum"] / 1e6)
    written = "sabio_async_response_upload_latency_seconds"
    assert prometheus(async_server, f"{written}_count", name) == 6
    assert prometheus(async_server, f"{written}_sum", name) == pytest.approx(upload["Sum"] / 1e6)


def test_buckets_merge_by_period_and_age_out() -> None:
    """A five-minute period holds both one-minute buckets; a case-changed endpoint name finds
    nothing, as CloudWatch dimensions are exact; past the retention window the variant is gone."""
    now = [7200.0]
    metrics = AsyncVariantMetrics(period_seconds=60, retention_seconds=600, clock=lambda: now[0])
    metrics.count("Ep", "A", "InvocationFailures", "RequestDownloadFailures")
    metrics.processed("Ep", "A", received_at=7190.0, started_at=7199.5)
    metrics.timed("Ep", "A", "RequestDownloadLatency", 0.0025)
    now[0] += 90
    metrics.processed("Ep", "A", received_at=7289.0, started_at=7289.0)
    [point] = metrics.datapoints("Ep", "A", "TimeInBacklog", 7200, 7400, 300)
    assert (point.timestamp, point.statistics.sample_count) == (7200, 2)
    assert (point.statistics.minimum, point.statistics.maximum) == (0.0, 9_500_000.0)
    assert metrics.datapoints("ep", "A", "TimeInBacklog", 7200, 7400, 300) == []
    [read] = metrics.datapoints("Ep", "A", "RequestDownloadLatency", 7200, 7400, 300)
    assert (read.statistics.sample_count, read.statistics.sum) == (1, 2500.0)  # microseconds
    failures = metrics.datapoints("Ep", "A", "InvocationFailures", 7200, 7400, 60)
    assert [(p.timestamp, p.statistics.sum) for p in failures] == [(7200, 1.0)]
    now[0] += 700
    assert metrics.variants() == []
    assert metrics.lifetime() == []
