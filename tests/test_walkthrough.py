"""The SageMaker deployment walkthrough, end to end, with unmodified boto3 code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.deploy import deploy, store_archive, unique
from support.models import INFERENCE_PY, iris_model, model_archive
from support.server import SabioServer


def test_train_package_deploy_invoke(server: SabioServer, sm: Any, runtime: Any, tmp_path: Path):
    archive = model_archive(tmp_path / "model.tar.gz", {"code/inference.py": INFERENCE_PY})
    uri = store_archive(server, archive, "walkthrough/model.tar.gz")
    name = deploy(sm, uri)

    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointArn"] == f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}"
    variant = described["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == 1
    assert variant["CurrentWeight"] == 1.0

    rows = [[10.2, 5.1, 2.3, 1.4], [5.1, 3.5, 1.4, 0.2]]
    response = runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/json",
        Body=json.dumps(rows),
        CustomAttributes="trace=1",
        InferenceId="inference-1",
    )
    expected = iris_model().predict(np.asarray(rows)).tolist()
    assert json.loads(response["Body"].read()) == {"predictions": expected}
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"

    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    with pytest.raises(runtime.exceptions.ValidationError, match="not found"):
        runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body="[[1]]")


def test_framework_defaults_without_inference_py(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
):
    archive = model_archive(tmp_path / "model.tar.gz", {})
    uri = store_archive(server, archive, f"{unique('defaults')}/model.tar.gz")
    name = deploy(sm, uri)
    response = runtime.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Accept="application/json", Body="5.1,3.5,1.4,0.2"
    )
    assert json.loads(response["Body"].read()) == [0]
    sm.delete_endpoint(EndpointName=name)


def test_two_instances_share_the_load(server: SabioServer, sm: Any, runtime: Any, tmp_path: Path):
    code = INFERENCE_PY + "\n\ndef _pid():\n    return os.getpid()\n"
    code = code.replace(
        'return json.dumps({"predictions": prediction.tolist()}), "application/json"',
        'return json.dumps({"pid": os.getpid()}), "application/json"',
    )
    archive = model_archive(tmp_path / "model.tar.gz", {"code/inference.py": code})
    uri = store_archive(server, archive, f"{unique('pair')}/model.tar.gz")
    name = deploy(sm, uri, instance_count=2)
    pids = {
        json.loads(
            runtime.invoke_endpoint(
                EndpointName=name, ContentType="application/json", Body="[[1,2,3,4]]"
            )["Body"].read()
        )["pid"]
        for _ in range(6)
    }
    assert len(pids) == 2
    sm.delete_endpoint(EndpointName=name)
