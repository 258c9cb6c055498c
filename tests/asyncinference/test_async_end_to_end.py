"""Asynchronous inference with the autoscaler and SNS, against one live server, as a user sets
them up with boto3: an endpoint that the policies AWS documents for asynchronous endpoints take
to zero instances, back to one when requests arrive and to zero again when they are answered;
and results and failures announced over HTTP on the endpoint's SNS topics."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from asyncinference.async_helpers import (
    FAST,
    completed_event,
    deploy_async,
    echo_model,
    put_input,
    wait_for_object,
)
from asyncinference.sns_helpers import confirmed, notifications
from autoscaling.scaling_helpers import FAST as FAST_SCALING
from notifications.conftest import FAST_RETRIES, Listener
from support.deploy import unique
from support.server import SabioServer, running_server

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STEP = "has-backlog-without-capacity"
SETTLE = 1.0  # longer than the delivery retries wait (FAST_RETRIES)
# Backlog samples are about a second apart: two-second datapoints always hold one.
SETTINGS = {
    **FAST,
    **FAST_SCALING,
    **FAST_RETRIES,
    "SABIO_AUTOSCALING_METRIC_PERIOD_SECONDS": "2",
    "SABIO_AUTOSCALING_SCALE_IN_DATAPOINTS": "2",
}


@pytest.fixture(scope="module")
def async_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    with running_server(tmp_path_factory.mktemp("async-e2e-home"), dict(SETTINGS)) as running:
        yield running


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running


def instance_counts(sm: Any, endpoint: str) -> tuple[int, int]:
    [variant] = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    return int(variant["CurrentInstanceCount"]), int(variant["DesiredInstanceCount"])


def wait_for_instances(sm: Any, endpoint: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_endpoint(EndpointName=endpoint)
        [variant] = described["ProductionVariants"]
        counts = (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"])
        if described["EndpointStatus"] == "InService" and counts == (count, count):
            return
        assert time.monotonic() < deadline, f"never at {count} instances: {described}"
        time.sleep(0.2)


def successful(aas: Any, rid: str, count: int) -> list[tuple[str, str]]:
    """(Description, Cause) of the target's Successful activities, newest first, once there
    are `count` of them."""
    deadline = time.monotonic() + 10
    while True:
        found = aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=rid)
        done = [
            (a["Description"], a["Cause"])
            for a in found["ScalingActivities"]
            if a["StatusCode"] == "Successful"
        ]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


def scale_to_zero_policies(aas: Any, cloudwatch: Any, endpoint: str) -> str:
    """Register the variant with MinCapacity 0 and attach the two policies AWS documents for
    asynchronous endpoints; returns the name of the alarm that starts the first instance."""
    where = {
        "ServiceNamespace": NS,
        "ResourceId": f"endpoint/{endpoint}/variant/AllTraffic",
        "ScalableDimension": DIM,
    }
    aas.register_scalable_target(MinCapacity=0, MaxCapacity=1, **where)
    aas.put_scaling_policy(
        PolicyName="backlog-per-instance",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 5.0,
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance",
                "Namespace": "AWS/SageMaker",
                "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
                "Statistic": "Average",
            },
            "ScaleInCooldown": 1,
            "ScaleOutCooldown": 1,
        },
        **where,
    )
    step = aas.put_scaling_policy(
        PolicyName=STEP,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": 1,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
        },
        **where,
    )
    alarm = f"{endpoint}-has-backlog-without-capacity"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        MetricName="HasBacklogWithoutCapacity",
        Namespace="AWS/SageMaker",
        Statistic="Average",
        Period=2,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="missing",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        AlarmActions=[step["PolicyARN"]],
    )
    return alarm


def test_the_autoscaler_takes_an_async_endpoint_to_zero_and_back(
    clients: tuple[Any, Any, Any], async_server: SabioServer, tmp_path: Path
) -> None:
    sm, runtime, s3 = clients
    aas, cloudwatch = boto3.client("application-autoscaling"), boto3.client("cloudwatch")
    endpoint, _ = deploy_async(
        sm,
        s3,
        echo_model(async_server, tmp_path),
        ClientConfig={"MaxConcurrentInvocationsPerInstance": 2},
    )
    alarm = scale_to_zero_policies(aas, cloudwatch, endpoint)
    rid = f"endpoint/{endpoint}/variant/AllTraffic"

    # Idle: the target tracking policy's low alarm takes the variant to zero.
    wait_for_instances(sm, endpoint, 0, timeout=20)
    sent = [
        runtime.invoke_endpoint_async(
            EndpointName=endpoint,
            Body=json.dumps({"n": n, "sleep": 0.2}).encode(),
            ContentType="application/json",
        )
        for n in range(5)
    ]
    # Nothing can answer them until the step policy's alarm starts an instance.
    described = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    assert described[0]["AlarmActions"] and instance_counts(sm, endpoint)[0] == 0
    for n, response in enumerate(sent):
        answer = json.loads(wait_for_object(s3, response["OutputLocation"], timeout=40))
        assert answer["echo"] == {"n": n, "sleep": 0.2}
    # The queue is empty again: back to zero.
    wait_for_instances(sm, endpoint, 0, timeout=20)
    [described] = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    assert described["StateValue"] == "OK"

    # Each activity is marked Successful on the autoscaler's next pass after the change.
    done = successful(aas, rid, 3)
    assert [description for description, _ in done] == [
        "Setting desired instance count to 0.",
        "Setting desired instance count to 1.",
        "Setting desired instance count to 0.",
    ]
    high, low = done[1][1], done[0][1]
    assert high == f"monitor alarm {alarm} in state ALARM triggered policy {STEP}"
    assert low.startswith(f"monitor alarm TargetTracking-{rid}-AlarmLow-")
    assert low.endswith(" in state ALARM triggered policy backlog-per-instance")
    [step] = aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=rid, PolicyNames=[STEP])[
        "ScalingPolicies"
    ]
    assert [a["AlarmName"] for a in step["Alarms"]] == [alarm]
    sm.delete_endpoint(EndpointName=endpoint)


def test_results_and_failures_reach_an_http_subscriber(
    clients: tuple[Any, Any, Any], async_server: SabioServer, listener: Listener, tmp_path: Path
) -> None:
    sm, runtime, s3 = clients
    sns = boto3.client("sns")
    success = confirmed(sns, listener, "async-results")
    error = confirmed(sns, listener, "async-failures")
    bucket = unique("notified")
    endpoint, _ = deploy_async(
        sm,
        s3,
        echo_model(async_server, tmp_path),
        bucket=bucket,
        OutputConfig={
            "S3OutputPath": f"s3://{bucket}/results",
            "S3FailurePath": f"s3://{bucket}/failures",
            "NotificationConfig": {
                "SuccessTopic": success,
                "ErrorTopic": error,
                "IncludeInferenceResponseIn": [
                    "SUCCESS_NOTIFICATION_TOPIC",
                    "ERROR_NOTIFICATION_TOPIC",
                ],
            },
        },
    )
    source = put_input(s3, bucket, "in/ok.json", {"ok": 1})
    ok = runtime.invoke_endpoint_async(
        EndpointName=endpoint, InputLocation=source, ContentType="application/json"
    )
    bad = runtime.invoke_endpoint_async(
        EndpointName=endpoint, Body=b'{"fail": "no"}', ContentType="application/json"
    )
    answer = wait_for_object(s3, ok["OutputLocation"]).decode()
    failure = wait_for_object(s3, bad["FailureLocation"]).decode()

    def both(got: list[Any]) -> bool:
        return len(notifications(got)) >= 2

    listener.wait_for(both)
    time.sleep(SETTLE)  # a duplicate would arrive within this
    delivered = notifications(listener.wait_for(both))
    assert sorted(d["TopicArn"] for d in delivered) == sorted([success, error])
    by_topic = {d["TopicArn"]: json.loads(d["Message"]) for d in delivered}

    completed = by_topic[success]
    assert ISO.match(completed.pop("eventTime")) and ISO.match(completed.pop("receivedTime"))
    assert completed == completed_event(
        endpoint, source, ok["OutputLocation"], answer, ok["InferenceId"]
    )

    failed = by_topic[error]
    assert ISO.match(failed.pop("eventTime")) and ISO.match(failed.pop("receivedTime"))
    assert failed.pop("failureReason").startswith("ClientError: Received server error (500)")
    assert "asked to fail: no" in failure
    assert failed == {
        "awsRegion": "us-east-1",
        "invocationStatus": "Failed",
        "requestParameters": {"endpointName": endpoint, "contentType": "application/json"},
        "responseParameters": {
            "failureLocation": bad["FailureLocation"],
            "responseBody": {"content": failure, "encoding": "UTF-8"},
        },
        "inferenceId": bad["InferenceId"],
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    sm.delete_endpoint(EndpointName=endpoint)


def test_an_invocations_per_instance_policy_has_no_data_on_an_async_endpoint(
    clients: tuple[Any, Any, Any], async_server: SabioServer, tmp_path: Path
) -> None:
    """As on AWS, an asynchronous endpoint publishes no `InvocationsPerInstance`, so a target
    tracking policy on it never scales the endpoint, however busy it is."""
    sm, runtime, s3 = clients
    aas = boto3.client("application-autoscaling")
    endpoint, _ = deploy_async(
        sm,
        s3,
        echo_model(async_server, tmp_path),
        ClientConfig={"MaxConcurrentInvocationsPerInstance": 1},
    )
    rid = f"endpoint/{endpoint}/variant/AllTraffic"
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    aas.register_scalable_target(MinCapacity=1, MaxCapacity=3, **where)
    aas.put_scaling_policy(
        PolicyName="invocations-per-instance",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 1.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 1,
            "ScaleOutCooldown": 1,
        },
        **where,
    )
    # About ten answered requests a second for three metric periods: far above the target.
    sent = [
        runtime.invoke_endpoint_async(
            EndpointName=endpoint,
            Body=json.dumps({"n": n, "sleep": 0.1}).encode(),
            ContentType="application/json",
        )
        for n in range(60)
    ]
    for response in sent:
        wait_for_object(s3, response["OutputLocation"], timeout=40)
    assert instance_counts(sm, endpoint) == (1, 1)
    activities = aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=rid)
    assert activities["ScalingActivities"] == []
    sm.delete_endpoint(EndpointName=endpoint)
