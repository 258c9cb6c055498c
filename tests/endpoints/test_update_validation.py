"""Endpoint updates SageMaker refuses: any update of a Failed endpoint, a variant named twice or
given the other kind's capacity in UpdateEndpointWeightsAndCapacities, and a DeploymentConfig
with two update policies. A refused update leaves the endpoint as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.deploy import (
    create_model,
    deploy,
    endpoint_config,
    store_code_model,
    unique,
    wait_for_status,
)
from support.server import SabioServer

ECHO = """\
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return body, "application/json"
"""
BROKEN = "def model_fn(model_dir):\n    raise RuntimeError('these weights do not load')\n"
BOTH_POLICIES = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    },
    "RollingUpdatePolicy": {
        "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 0,
    },
}


def refusal(call: Any, **kwargs: Any) -> str:
    """The message of the ValidationException `call` must raise."""
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException", error
    return str(error["Message"])


def test_a_failed_endpoint_can_only_be_deleted(server: SabioServer, sm: Any, tmp_path: Path):
    broken = store_code_model(server, tmp_path, BROKEN, "broken")
    name = deploy(sm, broken, wait=False)
    described = wait_for_status(sm, name, {"Failed", "InService"})
    assert described["EndpointStatus"] == "Failed"
    good = create_model(sm, store_code_model(server, tmp_path, ECHO, "echo"), "echo")
    config = endpoint_config(sm, good, instance_type="ml.m5.large")

    message = refusal(sm.update_endpoint, EndpointName=name, EndpointConfigName=config)
    assert message == (
        f'Cannot update failed endpoint "{described["EndpointArn"]}". DeleteEndpoint is the '
        "only operation that can be performed on a failed endpoint; delete it and create it "
        "again."
    )
    message = refusal(
        sm.update_endpoint_weights_and_capacities,
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 2.0}],
    )
    assert message.startswith("Cannot update failed endpoint")
    still = sm.describe_endpoint(EndpointName=name)
    assert (still["EndpointStatus"], still["EndpointConfigName"]) == ("Failed", name)
    assert "these weights do not load" in still["FailureReason"]
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )


def test_weights_and_capacities_fit_each_variant_once(server: SabioServer, sm: Any, tmp_path: Path):
    name = unique("mixed")
    variants = [
        {
            "VariantName": "Instances",
            "ModelName": name,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
        },
        {
            "VariantName": "Serverless",
            "ModelName": name,
            "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
        },
    ]
    deploy(sm, store_code_model(server, tmp_path, ECHO, "echo"), name=name, variants=variants)
    before = sm.describe_endpoint(EndpointName=name)["ProductionVariants"]

    def update(*desired: dict[str, Any]) -> str:
        return refusal(
            sm.update_endpoint_weights_and_capacities,
            EndpointName=name,
            DesiredWeightsAndCapacities=list(desired),
        )

    assert update(
        {"VariantName": "Instances", "DesiredInstanceCount": 1},
        {"VariantName": "instances", "DesiredInstanceCount": 1},
    ) == ('The variant name "instances" was non-unique within the request.')
    concurrency = {"MaxConcurrency": 4}
    assert update({"VariantName": "Instances", "ServerlessUpdateConfig": concurrency}) == (
        "Variant Instances runs on instances; ServerlessUpdateConfig applies only to "
        "serverless variants. Use DesiredInstanceCount to change its capacity."
    )
    assert update({"VariantName": "Serverless", "DesiredInstanceCount": 2}) == (
        "Variant Serverless is serverless; it has no instance count."
    )
    over = {"MaxConcurrency": 2, "ProvisionedConcurrency": 3}
    assert update({"VariantName": "Serverless", "ServerlessUpdateConfig": over}) == (
        "Variant Serverless: ProvisionedConcurrency (3) must be less than or equal to "
        "MaxConcurrency (2)."
    )

    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"] == before
    sm.delete_endpoint(EndpointName=name)


def test_a_deployment_config_names_one_update_policy(server: SabioServer, sm: Any, tmp_path: Path):
    name = deploy(sm, store_code_model(server, tmp_path, ECHO, "echo"))
    expected = (
        "DeploymentConfig can specify BlueGreenUpdatePolicy or RollingUpdatePolicy, not both: "
        "a deployment follows one update policy."
    )
    message = refusal(
        sm.update_endpoint,
        EndpointName=name,
        EndpointConfigName=name,
        DeploymentConfig=BOTH_POLICIES,
    )
    assert message == expected
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    other = unique("ep")
    message = refusal(
        sm.create_endpoint,
        EndpointName=other,
        EndpointConfigName=name,
        DeploymentConfig=BOTH_POLICIES,
    )
    assert message == expected
    assert not sm.list_endpoints(NameContains=other)["Endpoints"]
    sm.delete_endpoint(EndpointName=name)
