"""Autoscaling a serverless variant's provisioned concurrency
(`sagemaker:variant:DesiredProvisionedConcurrency`): concurrent load raises it through target
tracking on `SageMakerVariantProvisionedConcurrencyUtilization`, never above MaxConcurrency, and
it falls back to the minimum once the load stops; a step policy follows an alarm on the
spillover metric; registering on a variant without provisioned concurrency is refused."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from autoscaling.scaling_helpers import Clients, deploy_echo, resource_id
from support.deploy import deploy, store_code_model, unique

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredProvisionedConcurrency"
PREDEFINED = "SageMakerVariantProvisionedConcurrencyUtilization"

SLEEPY = """\
import json, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    time.sleep(json.loads(body).get("sleep", 0))
    return b"{}", "application/json"
"""


@pytest.fixture(scope="module")
def sleepy_uri(clients: Clients, tmp_path_factory: pytest.TempPathFactory) -> str:
    return store_code_model(clients.server, tmp_path_factory.mktemp("sleepy"), SLEEPY, "sleepy")


def deploy_serverless(clients: Clients, uri: str, **serverless: int) -> str:
    name = unique("pc")
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "ServerlessConfig": {"MemorySizeInMB": 1024, **serverless},
    }
    return deploy(clients.sm, uri, name=name, variants=[variant], wait_attempts=600)


@contextmanager
def concurrent_load(clients: Clients, endpoint: str, threads: int = 2) -> Iterator[None]:
    """`threads` clients each keeping one slow invocation in flight until the block ends."""
    running = threading.Event()
    running.set()
    failures: list[str] = []

    def call() -> None:
        while running.is_set():
            try:
                clients.runtime.invoke_endpoint(
                    EndpointName=endpoint,
                    ContentType="application/json",
                    Body=json.dumps({"sleep": 0.5}),
                )
            except Exception as exc:  # a failure is reported, not swallowed
                failures.append(repr(exc))
                time.sleep(0.05)

    workers = [threading.Thread(target=call, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        running.clear()
        for worker in workers:
            worker.join(timeout=10)
    assert not failures, failures[:3]


def provisioned(clients: Clients, endpoint: str) -> int | None:
    """The ProvisionedConcurrency DescribeEndpoint reports as current (None while updating)."""
    described = clients.sm.describe_endpoint(EndpointName=endpoint)
    if described["EndpointStatus"] != "InService":
        return None
    [variant] = described["ProductionVariants"]
    return int(variant["CurrentServerlessConfig"]["ProvisionedConcurrency"])


def wait_for_provisioned(
    clients: Clients, endpoint: str, value: int, seen: list[int], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        current = provisioned(clients, endpoint)
        if current is not None:
            seen.append(current)
        if current == value:
            return
        assert time.monotonic() < deadline, f"never reached {value} (saw {seen})"
        time.sleep(0.2)


def activities(clients: Clients, rid: str, **kwargs: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = clients.aas.describe_scaling_activities(
        ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM, **kwargs
    )["ScalingActivities"]
    return found


def successful(clients: Clients, rid: str, count: int) -> list[dict[str, Any]]:
    """The target's Successful activities, newest first, once there are at least `count`."""
    deadline = time.monotonic() + 10
    while True:
        done = [a for a in activities(clients, rid) if a["StatusCode"] == "Successful"]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


def scrape(clients: Clients) -> str:
    with urllib.request.urlopen(f"{clients.server.url}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_target_tracking_raises_provisioned_concurrency_under_load_and_lowers_it_after(
    clients: Clients, sleepy_uri: str
) -> None:
    endpoint = deploy_serverless(clients, sleepy_uri, MaxConcurrency=3, ProvisionedConcurrency=1)
    rid = resource_id(endpoint)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    # MaxCapacity above MaxConcurrency: the autoscaler stops at MaxConcurrency and says so.
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=5, **where)
    [target] = clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])[
        "ScalableTargets"
    ]
    assert (target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (
        DIM,
        1,
        5,
    )
    policy = clients.aas.put_scaling_policy(
        PolicyName="utilization",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 0.5,
            "PredefinedMetricSpecification": {"PredefinedMetricType": PREDEFINED},
            "ScaleOutCooldown": 1,
            "ScaleInCooldown": 1,
        },
        **where,
    )
    high = next(a["AlarmName"] for a in policy["Alarms"] if "-AlarmHigh-" in a["AlarmName"])
    low = next(a["AlarmName"] for a in policy["Alarms"] if "-AlarmLow-" in a["AlarmName"])

    seen: list[int] = []
    with concurrent_load(clients, endpoint, threads=3):
        # Three invocations in flight on one provisioned: utilization 1.0, twice the target.
        wait_for_provisioned(clients, endpoint, 3, seen, timeout=25)
        # Held at MaxConcurrency (3) although MaxCapacity is 5 and the load asks for more.
        time.sleep(1.5)
        assert provisioned(clients, endpoint) == 3
        metrics = scrape(clients)
    outs = successful(clients, rid, 2)
    # One provisioned at utilization 1.0 asks for 2; two ask for 4, capped at 3.
    history = [
        (a["Description"], a["Cause"][:30], a["StatusCode"], a["StartTime"])
        for a in activities(clients, rid, IncludeNotScaledActivities=True)
    ]
    assert outs[0]["Description"] == "Setting desired provisioned concurrency to 3.", history
    assert outs[1]["Description"] == "Setting desired provisioned concurrency to 2.", history
    assert all(a["ScalableDimension"] == DIM for a in outs)
    assert outs[0]["Cause"] == f"monitor alarm {high} in state ALARM triggered policy utilization"
    assert outs[0]["StatusMessage"] == (
        "Successfully set desired provisioned concurrency to 3 (capped at the variant's "
        "MaxConcurrency of 3, below the scalable target's MaxCapacity of 5). Change "
        "successfully fulfilled by sagemaker."
    )
    not_scaled = activities(clients, rid, IncludeNotScaledActivities=True)
    assert any(
        reason["Code"] == "AlreadyAtMaxCapacity" and reason["MaxCapacity"] == 3
        for a in not_scaled
        for reason in a.get("NotScaledReasons", [])
    )
    # The pool published what the policy tracked, to /metrics and CloudWatch.
    labels = f'endpoint="{endpoint}",variant="AllTraffic"'
    assert f"sabio_provisioned_concurrency{{{labels}}} 3" in metrics
    spilled = next(
        line
        for line in metrics.splitlines()
        if line.startswith(f"sabio_provisioned_concurrency_spillover_invocations_total{{{labels}")
    )
    assert int(spilled.rsplit(" ", 1)[1]) > 0
    now = datetime.now(UTC)
    stats = clients.cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="ServerlessProvisionedConcurrencyUtilization",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum", "Average"],
    )
    assert stats["Datapoints"] and max(p["Maximum"] for p in stats["Datapoints"]) == 1.0
    assert all(0 < p["Average"] <= 1.0 for p in stats["Datapoints"])
    assert all(p["Unit"] == "None" for p in stats["Datapoints"])

    # No load: utilization 0, back to MinCapacity one step at a time.
    seen.clear()
    wait_for_provisioned(clients, endpoint, 1, seen, timeout=25)
    ins = successful(clients, rid, len(outs) + 2)[:2]
    assert [a["Description"] for a in reversed(ins)] == [
        "Setting desired provisioned concurrency to 2.",
        "Setting desired provisioned concurrency to 1.",
    ]
    assert ins[0]["Cause"] == f"monitor alarm {low} in state ALARM triggered policy utilization"
    assert 2 in seen
    [variant] = clients.sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert variant["CurrentServerlessConfig"] == {
        "MemorySizeInMB": 1024,
        "MaxConcurrency": 3,
        "ProvisionedConcurrency": 1,
    }
    clients.sm.delete_endpoint(EndpointName=endpoint)


def test_step_policy_adds_provisioned_concurrency_when_invocations_spill_over(
    clients: Clients, sleepy_uri: str
) -> None:
    endpoint = deploy_serverless(clients, sleepy_uri, MaxConcurrency=2, ProvisionedConcurrency=1)
    rid = resource_id(endpoint)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=2, **where)
    policy = clients.aas.put_scaling_policy(
        PolicyName="spillover",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
            "Cooldown": 300,
        },
        **where,
    )
    clients.cloudwatch.put_metric_alarm(
        AlarmName=f"{endpoint}-spillover",
        Namespace="AWS/SageMaker",
        MetricName="ServerlessProvisionedConcurrencySpilloverInvocations",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        Statistic="Sum",
        Period=1,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=[policy["PolicyARN"]],
    )
    seen: list[int] = []
    with concurrent_load(clients, endpoint):
        wait_for_provisioned(clients, endpoint, 2, seen, timeout=20)
    [activity] = successful(clients, rid, 1)
    assert activity["Description"] == "Setting desired provisioned concurrency to 2."
    assert activity["Cause"] == (
        f"monitor alarm {endpoint}-spillover in state ALARM triggered policy spillover"
    )
    clients.sm.delete_endpoint(EndpointName=endpoint)


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_provisioned_concurrency_is_refused_where_it_does_not_apply(
    clients: Clients, sleepy_uri: str, echo_model_uri: str
) -> None:
    aas = clients.aas
    on_demand = deploy_serverless(clients, sleepy_uri, MaxConcurrency=2)
    on_instances = deploy_echo(clients, echo_model_uri)
    base = {"ServiceNamespace": NS, "ScalableDimension": DIM, "MinCapacity": 1, "MaxCapacity": 2}

    code, message = error_of(
        aas.register_scalable_target, ResourceId=resource_id(on_demand), **base
    )
    assert code == "ValidationException"
    assert "without ProvisionedConcurrency" in message
    code, message = error_of(
        aas.register_scalable_target, ResourceId=resource_id(on_instances), **base
    )
    assert code == "ValidationException" and "runs on instances" in message
    # The instance count dimension is refused on a serverless variant, as before.
    code, message = error_of(
        aas.register_scalable_target,
        ResourceId=resource_id(on_demand),
        **{**base, "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"},
    )
    assert code == "ValidationException" and "is serverless" in message

    # Given provisioned concurrency, the variant can be registered, from 1 up.
    clients.sm.update_endpoint_weights_and_capacities(
        EndpointName=on_demand,
        DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "ServerlessUpdateConfig": {"ProvisionedConcurrency": 1}}
        ],
    )
    wait_for_provisioned(clients, on_demand, 1, [], timeout=20)
    rid = resource_id(on_demand)
    code, message = error_of(
        aas.register_scalable_target, ResourceId=rid, **{**base, "MinCapacity": 0}
    )
    assert code == "ValidationException" and "at least 1" in message
    aas.register_scalable_target(ResourceId=rid, **base)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    code, message = error_of(
        aas.put_scaling_policy,
        PolicyName="wrong-metric",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 0.5,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
        **where,
    )
    assert code == "ValidationException" and PREDEFINED in message
    # The target answers to its own dimension only.
    code, message = error_of(
        aas.deregister_scalable_target,
        ServiceNamespace=NS,
        ResourceId=rid,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
    )
    assert code == "ObjectNotFoundException"
    assert (
        aas.describe_scalable_targets(
            ServiceNamespace=NS,
            ResourceIds=[rid],
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        )["ScalableTargets"]
        == []
    )
    aas.deregister_scalable_target(**where)
    for endpoint in (on_demand, on_instances):
        clients.sm.delete_endpoint(EndpointName=endpoint)
