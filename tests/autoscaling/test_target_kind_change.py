"""A variant that changes kind (instances to serverless, by UpdateEndpoint) under a registered
scalable target: registering its new dimension says the old target is in the way, instead of
answering with the old target and dropping the new one."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from autoscaling.scaling_helpers import Clients, deploy_echo, resource_id
from support.deploy import unique

NS = "sagemaker"
INSTANCES = "sagemaker:variant:DesiredInstanceCount"
PROVISIONED = "sagemaker:variant:DesiredProvisionedConcurrency"


def test_a_target_of_the_old_kind_must_be_deregistered_first(
    clients: Clients, echo_model_uri: str
) -> None:
    endpoint = deploy_echo(clients, echo_model_uri)
    rid = resource_id(endpoint)
    old = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": INSTANCES}
    new = {**old, "ScalableDimension": PROVISIONED}
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=2, **old)
    [model] = [
        v["ModelName"]
        for v in clients.sm.describe_endpoint_config(
            EndpointConfigName=clients.sm.describe_endpoint(EndpointName=endpoint)[
                "EndpointConfigName"
            ]
        )["ProductionVariants"]
    ]
    config = unique("serverless")
    serverless = {"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 1}
    clients.sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "ServerlessConfig": serverless}
        ],
    )
    clients.sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    deadline = time.monotonic() + 60
    while True:
        described = clients.sm.describe_endpoint(EndpointName=endpoint)
        if described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == config:
            break
        assert time.monotonic() < deadline, described["EndpointStatus"]
        time.sleep(0.2)

    with pytest.raises(ClientError) as caught:
        clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=2, **new)
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert INSTANCES in error["Message"] and "deregister" in error["Message"]

    clients.aas.deregister_scalable_target(**old)
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=2, **new)
    [target] = clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])[
        "ScalableTargets"
    ]
    assert target["ScalableDimension"] == PROVISIONED
    clients.sm.delete_endpoint(EndpointName=endpoint)
