"""Scalable targets, policies and activities are in the metadata store: a restarted server
still has them, with the same ARNs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaling.scaling_helpers import FAST, Clients, resource_id
from support.deploy import deploy, unique, wait_for_status
from support.server import SabioServer

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"


def test_targets_policies_and_activities_survive_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = SabioServer(home, env=dict(FAST))
    first.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", first.url)
        clients = Clients(first)
        # No worker is needed to keep a target: model data that is missing fails the endpoint
        # at once, and a failed endpoint keeps its targets.
        endpoint = deploy(
            clients.sm, "s3://models/missing/model.tar.gz", name=unique("gone"), wait=False
        )
        assert wait_for_status(clients.sm, endpoint, {"Failed"})["EndpointStatus"] == "Failed"
        rid = resource_id(endpoint)
        where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
        arn = clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=1, **where)[
            "ScalableTargetARN"
        ]
        policy = clients.aas.put_scaling_policy(
            PolicyName="kept",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 10.0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
            },
            **where,
        )
    finally:
        first.stop()

    second = SabioServer(home, env=dict(FAST))
    second.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", second.url)
        clients = Clients(second)
        [target] = clients.aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"]
        assert (target["ScalableTargetARN"], target["ResourceId"]) == (arn, rid)
        [kept] = clients.aas.describe_scaling_policies(ServiceNamespace=NS)["ScalingPolicies"]
        assert kept["PolicyARN"] == policy["PolicyARN"]
        assert kept["Alarms"] == policy["Alarms"]
    finally:
        second.stop()
