"""The Application Auto Scaling operations through boto3: targets, policies, activities and the
errors AWS gives for each."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from autoscaling.scaling_helpers import Clients, deploy_echo, resource_id
from support.deploy import deploy, unique

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.fixture(scope="module")
def endpoint(clients: Clients, echo_model_uri: str) -> str:
    return deploy_echo(clients, echo_model_uri)


def register(clients: Clients, rid: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = clients.aas.register_scalable_target(
        ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM, **kwargs
    )
    return result


def activities(clients: Clients, rid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = clients.aas.describe_scaling_activities(
        ServiceNamespace=NS, ResourceId=rid
    )["ScalingActivities"]
    return found


def test_register_describe_and_deregister_a_target(clients: Clients, endpoint: str) -> None:
    rid = resource_id(endpoint)
    arn = register(clients, rid, MinCapacity=1, MaxCapacity=3)["ScalableTargetARN"]
    assert re.fullmatch(
        r"arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/[0-9a-f]{36}", arn
    )
    # Registering again updates the range in place and keeps the ARN.
    assert register(clients, rid, MaxCapacity=4)["ScalableTargetARN"] == arn
    targets = clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])
    [target] = targets["ScalableTargets"]
    assert target["ScalableTargetARN"] == arn
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert target["ScalableDimension"] == DIM
    assert target["SuspendedState"] == {
        "DynamicScalingInSuspended": False,
        "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": False,
    }
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in target["RoleARN"]
    code, message = error_of(
        clients.aas.describe_scalable_targets, ServiceNamespace=NS, MaxResults=51
    )
    assert code == "ValidationException" and "less than or equal to 50" in message
    code, _ = error_of(clients.aas.describe_scaling_activities, ServiceNamespace=NS, NextToken="??")
    assert code == "InvalidNextTokenException"
    code, _ = error_of(clients.aas.describe_scalable_targets, ServiceNamespace="ecs")
    assert code == "ValidationException"

    clients.aas.deregister_scalable_target(
        ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM
    )
    assert (
        clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])[
            "ScalableTargets"
        ]
        == []
    )
    code, message = error_of(
        clients.aas.deregister_scalable_target,
        ServiceNamespace=NS,
        ResourceId=rid,
        ScalableDimension=DIM,
    )
    assert code == "ObjectNotFoundException"
    assert message == (
        f"No scalable target registered for service namespace: sagemaker, resource ID: {rid}, "
        f"scalable dimension: {DIM}"
    )


def test_register_rejects_what_aws_rejects(clients: Clients, endpoint: str) -> None:
    aas = clients.aas
    base = {"ServiceNamespace": NS, "ScalableDimension": DIM, "MinCapacity": 1, "MaxCapacity": 2}
    code, message = error_of(aas.register_scalable_target, ResourceId="endpoint/nope", **base)
    assert (code, message) == (
        "ValidationException",
        "Unsupported service namespace, resource type or scalable dimension",
    )
    code, message = error_of(
        aas.register_scalable_target, ResourceId=resource_id("missing-endpoint"), **base
    )
    assert code == "ValidationException" and "missing-endpoint" in message
    code, message = error_of(
        aas.register_scalable_target, ResourceId=resource_id(endpoint, "Nope"), **base
    )
    assert code == "ValidationException" and '"Nope"' in message
    code, message = error_of(
        aas.register_scalable_target,
        ResourceId=resource_id(endpoint),
        **{**base, "MinCapacity": 3, "MaxCapacity": 2},
    )
    assert code == "ValidationException" and "greater than maximum" in message
    # A real-time variant cannot go to zero; asynchronous ones can (see test_autoscaler).
    code, message = error_of(
        aas.register_scalable_target, ResourceId=resource_id(endpoint), **{**base, "MinCapacity": 0}
    )
    assert code == "ValidationException" and "asynchronous" in message
    code, _ = error_of(
        aas.register_scalable_target,
        ServiceNamespace=NS,
        ScalableDimension=DIM,
        ResourceId=resource_id(endpoint),
    )
    assert code == "ValidationException"
    # Enums are checked on the server, as botocore does not.
    code, message = error_of(
        aas.register_scalable_target,
        ServiceNamespace=NS,
        ScalableDimension="sagemaker:variant:Bogus",
        ResourceId=resource_id(endpoint),
    )
    assert code == "ValidationException" and "scalableDimension" in message


def test_policies_put_describe_delete(clients: Clients, endpoint: str) -> None:
    aas = clients.aas
    rid = resource_id(endpoint)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    code, message = error_of(
        aas.put_scaling_policy,
        PolicyName="early",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={"TargetValue": 5.0},
        **where,
    )
    assert code == "ObjectNotFoundException" and "No scalable target registered" in message

    register(clients, rid, MinCapacity=1, MaxCapacity=2)
    tracking = aas.put_scaling_policy(
        PolicyName="invocations",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
        **where,
    )
    assert re.fullmatch(
        r"arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:[0-9a-f-]{36}:"
        rf"resource/sagemaker/{re.escape(rid)}:policyName/invocations",
        tracking["PolicyARN"],
    )
    names = sorted(a["AlarmName"] for a in tracking["Alarms"])
    assert [n.split("-")[0] for n in names] == ["TargetTracking", "TargetTracking"]
    assert f"TargetTracking-{rid}-AlarmHigh-" in names[0]
    assert f"TargetTracking-{rid}-AlarmLow-" in names[1]
    assert all(a["AlarmARN"].startswith("arn:aws:cloudwatch:") for a in tracking["Alarms"])
    again = aas.put_scaling_policy(
        PolicyName="invocations",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 80.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 600,
        },
        **where,
    )
    assert again["PolicyARN"] == tracking["PolicyARN"]

    backlog = aas.put_scaling_policy(
        PolicyName="backlog",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": 60,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
        },
        **where,
    )
    assert "Alarms" not in backlog or backlog["Alarms"] == []

    described = aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=rid)
    by_name = {p["PolicyName"]: p for p in described["ScalingPolicies"]}
    assert set(by_name) == {"invocations", "backlog"}
    config = by_name["invocations"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 80.0
    assert (config["ScaleInCooldown"], config["ScaleOutCooldown"]) == (600, 300)
    assert by_name["backlog"]["PolicyType"] == "StepScaling"
    page = aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=rid, MaxResults=1)
    assert len(page["ScalingPolicies"]) == 1 and page["NextToken"]
    rest = aas.describe_scaling_policies(
        ServiceNamespace=NS, ResourceId=rid, MaxResults=1, NextToken=page["NextToken"]
    )
    assert rest["ScalingPolicies"][0]["PolicyName"] != page["ScalingPolicies"][0]["PolicyName"]
    code, _ = error_of(aas.describe_scaling_policies, ServiceNamespace=NS, NextToken="not-a-token!")
    assert code == "InvalidNextTokenException"

    aas.delete_scaling_policy(PolicyName="backlog", **where)
    code, message = error_of(aas.delete_scaling_policy, PolicyName="backlog", **where)
    assert code == "ObjectNotFoundException" and "backlog" in message
    # Deregistering a target deletes its policies.
    aas.deregister_scalable_target(**where)
    assert (
        aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=rid)["ScalingPolicies"] == []
    )


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        (
            {"PolicyType": "TargetTrackingScaling"},
            "TargetTrackingScalingPolicyConfiguration is required",
        ),
        (
            {
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 1.0},
            },
            "Exactly one of",
        ),
        (
            {
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 1.0,
                    "CustomizedMetricSpecification": {"MetricName": "ApproximateBacklogSize"},
                },
            },
            "requires Namespace, Statistic",
        ),
        (
            {
                "PolicyType": "StepScaling",
                "StepScalingPolicyConfiguration": {
                    "AdjustmentType": "ChangeInCapacity",
                    "StepAdjustments": [
                        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1},
                        {"MetricIntervalLowerBound": 5, "ScalingAdjustment": 2},
                    ],
                },
            },
            "null upper bound",
        ),
        ({"PolicyType": "PredictiveScaling"}, "not supported"),
    ],
)
def test_invalid_policies(
    clients: Clients, endpoint: str, policy: dict[str, Any], fragment: str
) -> None:
    rid = resource_id(endpoint)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    register(clients, rid, MinCapacity=1, MaxCapacity=2)
    code, message = error_of(clients.aas.put_scaling_policy, PolicyName="bad", **where, **policy)
    assert code == "ValidationException"
    assert fragment in message


def test_registering_a_range_above_the_count_scales_out_as_an_activity(
    clients: Clients, echo_model_uri: str
) -> None:
    name = deploy_echo(clients, echo_model_uri)
    rid = resource_id(name)
    register(clients, rid, MinCapacity=2, MaxCapacity=3)
    deadline = time.monotonic() + 30
    while True:
        [activity] = activities(clients, rid)
        if activity["StatusCode"] == "Successful" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert activity["StatusCode"] == "Successful"
    assert activity["Cause"] == "minimum capacity was set to 2"
    assert activity["Description"] == "Setting desired instance count to 2."
    assert activity["StatusMessage"] == (
        "Successfully set desired instance count to 2. Change successfully fulfilled by sagemaker."
    )
    assert activity["EndTime"] >= activity["StartTime"]
    [variant] = clients.sm.describe_endpoint(EndpointName=name)["ProductionVariants"]
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (2, 2)

    # Deleting the endpoint deregisters its scalable targets, as on AWS.
    clients.sm.delete_endpoint(EndpointName=name)
    deadline = time.monotonic() + 15
    while clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])[
        "ScalableTargets"
    ]:
        assert time.monotonic() < deadline, "the target outlived its endpoint"
        time.sleep(0.2)


def test_asynchronous_variants_may_scale_to_zero(clients: Clients, echo_model_uri: str) -> None:
    name = deploy(
        clients.sm,
        echo_model_uri,
        name=unique("async"),
        wait=False,
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://results/async/"}},
    )
    rid = resource_id(name)
    register(clients, rid, MinCapacity=0, MaxCapacity=2)
    [target] = clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])[
        "ScalableTargets"
    ]
    assert target["MinCapacity"] == 0
    clients.aas.deregister_scalable_target(
        ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM
    )
    clients.sm.delete_endpoint(EndpointName=name)
