"""The autoscaler for real: invoke load on a live endpoint moves its instance count out and back
in through target tracking, a step policy follows its alarm, and Min/Max hold throughout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from autoscaling.scaling_helpers import Clients, deploy_echo, resource_id

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"


@contextmanager
def invoke_load(clients: Clients, endpoint: str, threads: int = 3) -> Iterator[list[int]]:
    """A few threads calling InvokeEndpoint as fast as they can until the block ends; yields
    the instance counts DescribeEndpoint reported meanwhile (filled by the caller)."""
    running = threading.Event()
    running.set()
    failures: list[str] = []

    def call() -> None:
        while running.is_set():
            try:
                clients.runtime.invoke_endpoint(
                    EndpointName=endpoint, ContentType="application/json", Body=b"{}"
                )
            except Exception as exc:  # a failure is reported, not swallowed
                failures.append(repr(exc))
                time.sleep(0.05)

    workers = [threading.Thread(target=call, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield []
    finally:
        running.clear()
        for worker in workers:
            worker.join(timeout=10)
    assert not failures, failures[:3]


def variant_counts(clients: Clients, endpoint: str) -> tuple[int, int]:
    [variant] = clients.sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    return int(variant["CurrentInstanceCount"]), int(variant["DesiredInstanceCount"])


def wait_for_count(
    clients: Clients, endpoint: str, count: int, seen: list[int], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        current, desired = variant_counts(clients, endpoint)
        seen += [current, desired]
        if current == desired == count:
            return
        assert time.monotonic() < deadline, f"never reached {count} instances (saw {seen})"
        time.sleep(0.2)


def successful(clients: Clients, rid: str, count: int = 0) -> list[dict[str, Any]]:
    """The target's Successful activities, newest first, once there are at least `count`."""
    deadline = time.monotonic() + 10
    while True:
        found = clients.aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=rid)
        done = [a for a in found["ScalingActivities"] if a["StatusCode"] == "Successful"]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


def test_target_tracking_scales_out_under_load_and_back_in_when_it_stops(
    clients: Clients, echo_model_uri: str
) -> None:
    endpoint = deploy_echo(clients, echo_model_uri)
    rid = resource_id(endpoint)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    clients.aas.register_scalable_target(
        MinCapacity=1,
        MaxCapacity=2,
        SuspendedState={"DynamicScalingOutSuspended": True},
        **where,
    )
    policy = clients.aas.put_scaling_policy(
        PolicyName="invocations-per-instance",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 5.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleOutCooldown": 1,
            "ScaleInCooldown": 1,
        },
        **where,
    )
    high = next(a["AlarmName"] for a in policy["Alarms"] if "-AlarmHigh-" in a["AlarmName"])
    low = next(a["AlarmName"] for a in policy["Alarms"] if "-AlarmLow-" in a["AlarmName"])

    seen: list[int] = []
    with invoke_load(clients, endpoint):
        # While scaling out is suspended the count holds, whatever the load.
        time.sleep(2.5)
        assert variant_counts(clients, endpoint) == (1, 1)
        clients.aas.register_scalable_target(
            SuspendedState={"DynamicScalingOutSuspended": False}, **where
        )
        # Dozens of invocations a second against a target of 5 ask for far more than 2.
        wait_for_count(clients, endpoint, 2, seen, timeout=25)
    wait_for_count(clients, endpoint, 1, seen, timeout=25)
    assert max(seen) == 2, "MaxCapacity was exceeded"

    scale_in, scale_out = successful(clients, rid, 2)[:2]
    assert scale_out["Description"] == "Setting desired instance count to 2."
    assert scale_out["Cause"] == (
        f"monitor alarm {high} in state ALARM triggered policy invocations-per-instance"
    )
    assert scale_in["Description"] == "Setting desired instance count to 1."
    assert scale_in["Cause"] == (
        f"monitor alarm {low} in state ALARM triggered policy invocations-per-instance"
    )
    assert scale_in["StartTime"] >= scale_out["EndTime"]
    # Asking for more than MaxCapacity is recorded as a not-scaled activity.
    with_not_scaled = clients.aas.describe_scaling_activities(
        ServiceNamespace=NS, ResourceId=rid, IncludeNotScaledActivities=True
    )["ScalingActivities"]
    reasons = [r["Code"] for a in with_not_scaled for r in a.get("NotScaledReasons", [])]
    assert "AlreadyAtMaxCapacity" in reasons
    clients.sm.delete_endpoint(EndpointName=endpoint)


def test_step_scaling_follows_its_alarm(clients: Clients, echo_model_uri: str) -> None:
    endpoint = deploy_echo(clients, echo_model_uri)
    rid = resource_id(endpoint)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=2, **where)
    policy = clients.aas.put_scaling_policy(
        PolicyName="busy",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ExactCapacity",
            "MetricAggregationType": "Maximum",
            "Cooldown": 60,
            "StepAdjustments": [
                {
                    "MetricIntervalLowerBound": 0,
                    "MetricIntervalUpperBound": 1,
                    "ScalingAdjustment": 1,
                },
                {"MetricIntervalLowerBound": 1, "ScalingAdjustment": 5},
            ],
        },
        **where,
    )
    # The alarm that triggers the policy, created through the CloudWatch API.
    clients.cloudwatch.put_metric_alarm(
        AlarmName=f"{endpoint}-busy",
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        Statistic="Sum",
        Period=1,
        EvaluationPeriods=1,
        Threshold=2.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[policy["PolicyARN"]],
    )
    seen: list[int] = []
    with invoke_load(clients, endpoint, threads=2):
        # Far above the threshold: the ExactCapacity 5 step, held to MaxCapacity 2.
        wait_for_count(clients, endpoint, 2, seen, timeout=25)
        [alarm] = clients.cloudwatch.describe_alarms(AlarmNames=[f"{endpoint}-busy"])[
            "MetricAlarms"
        ]
        assert alarm["StateValue"] == "ALARM"
        assert alarm["StateReason"].startswith("Threshold Crossed")
    [activity] = successful(clients, rid, 1)
    [described] = clients.aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=rid)[
        "ScalingPolicies"
    ]
    assert [a["AlarmName"] for a in described["Alarms"]] == [f"{endpoint}-busy"]
    assert (
        activity["Cause"] == f"monitor alarm {endpoint}-busy in state ALARM triggered policy busy"
    )
    assert activity["Description"] == "Setting desired instance count to 2."
    assert max(seen) == 2
    clients.sm.delete_endpoint(EndpointName=endpoint)
