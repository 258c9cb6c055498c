"""Production variants: traffic split by weight, TargetVariant, least-outstanding balancing,
and UpdateEndpointWeightsAndCapacities changing weights and instance counts live."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.deploy import deploy, store_code_model, unique, wait_for_status
from support.server import SabioServer

WHO = """\
import json, os

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    answer = {"variant": os.environ["SAGEMAKER_VARIANT_NAME"], "pid": os.getpid()}
    return json.dumps(answer), "application/json"
"""


def two_variant_endpoint(
    server: SabioServer, sm: Any, tmp_path: Path, weights: tuple[float, float]
) -> str:
    uri = store_code_model(server, tmp_path, WHO, "who")
    name = unique("ab")
    variants = [
        {
            "VariantName": variant,
            "ModelName": name,
            "InstanceType": "ml.t2.medium",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": weight,
        }
        for variant, weight in zip(("A", "B"), weights, strict=True)
    ]
    return deploy(sm, uri, name=name, variants=variants)


def who(runtime: Any, name: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    response = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body="{}", **extra
    )
    return response["InvokedProductionVariant"], json.loads(response["Body"].read())


def test_traffic_split_target_variant_and_live_updates(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
):
    name = two_variant_endpoint(server, sm, tmp_path, (1.0, 3.0))
    counts = collections.Counter(who(runtime, name)[0] for _ in range(400))
    # Binomial(400, 0.25): mean 100, standard deviation about 8.7; allow 4 of them.
    assert 65 <= counts["A"] <= 135, counts
    assert counts["A"] + counts["B"] == 400
    for _ in range(5):
        variant, body = who(runtime, name, TargetVariant="A")
        assert variant == body["variant"] == "A"

    described = sm.describe_endpoint(EndpointName=name)
    assert [
        (v["VariantName"], v["CurrentWeight"], v["CurrentInstanceCount"])
        for v in described["ProductionVariants"]
    ] == [
        ("A", 1.0, 1),
        ("B", 3.0, 1),
    ]

    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[
            {"VariantName": "A", "DesiredWeight": 0.0},
            {"VariantName": "B", "DesiredInstanceCount": 2},
        ],
    )
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] in ("Updating", "InService")
    with pytest.raises(ClientError) as busy:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 1.0}],
        )
    assert busy.value.response["Error"]["Code"] == "ResourceInUse"
    described = wait_for_status(sm, name, {"InService"})
    assert [
        (v["VariantName"], v["CurrentWeight"], v["CurrentInstanceCount"])
        for v in described["ProductionVariants"]
    ] == [
        ("A", 0.0, 1),
        ("B", 3.0, 2),
    ]
    seen = [who(runtime, name) for _ in range(40)]
    assert {variant for variant, _ in seen} == {"B"}
    assert len({body["pid"] for _, body in seen}) == 2

    for bad, fragment in (
        ([{"VariantName": "C", "DesiredWeight": 1.0}], "not present in the endpoint"),
        ([{"VariantName": "B", "DesiredWeight": 0.0}], "greater than 0"),
    ):
        with pytest.raises(ClientError) as raised:
            sm.update_endpoint_weights_and_capacities(
                EndpointName=name, DesiredWeightsAndCapacities=bad
            )
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert fragment in raised.value.response["Error"]["Message"]

    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "B", "DesiredInstanceCount": 1}],
    )
    described = wait_for_status(sm, name, {"InService"})
    time.sleep(0.2)
    assert described["ProductionVariants"][1]["CurrentInstanceCount"] == 1
    assert len({who(runtime, name)[1]["pid"] for _ in range(10)}) == 1
    sm.delete_endpoint(EndpointName=name)
