"""UpdateEndpoint is blue/green: a client calling in a loop sees no failed request, and a new
config that never becomes healthy is rolled back while the old one keeps serving."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from support.deploy import (
    ROLE,
    SKLEARN_IMAGE,
    endpoint_config,
    store_archive,
    unique,
    wait_for_status,
)
from support.models import model_archive
from support.server import SabioServer

VERSION = """\
import json, time

def model_fn(model_dir):
    return "{version}"

def transform_fn(model, body, content_type, accept):
    time.sleep(0.005)
    return json.dumps({{"version": model}}), "application/json"
"""
BROKEN = "def model_fn(model_dir):\n    raise RuntimeError('the new weights do not load')\n"


def model(server: SabioServer, sm: Any, tmp_path: Path, code: str) -> str:
    name = unique("m")
    archive = model_archive(
        tmp_path / f"{name}.tar.gz", {"code/inference.py": code}, with_model=False
    )
    uri = store_archive(server, archive, f"{name}/model.tar.gz")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": uri},
    )
    return name


def test_blue_green_update_without_a_failed_request_and_rollback(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
):
    first = endpoint_config(sm, model(server, sm, tmp_path, VERSION.format(version="v1")))
    second = endpoint_config(sm, model(server, sm, tmp_path, VERSION.format(version="v2")), count=2)
    broken = endpoint_config(sm, model(server, sm, tmp_path, BROKEN))
    name = unique("bg")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=first)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )

    seen: list[str] = []
    failures: list[str] = []
    running = threading.Event()
    running.set()

    def hammer() -> None:
        while running.is_set():
            try:
                body = runtime.invoke_endpoint(
                    EndpointName=name, ContentType="application/json", Body="{}"
                )
                seen.append(json.loads(body["Body"].read())["version"])
            except Exception as error:
                failures.append(repr(error))

    client = threading.Thread(target=hammer)
    client.start()
    try:
        time.sleep(0.3)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=second)
        assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
        described = wait_for_status(sm, name, {"InService", "Failed"})
        time.sleep(0.3)
    finally:
        running.clear()
        client.join()
    assert failures == []
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == second
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    switch = seen.index("v2")
    assert set(seen[:switch]) == {"v1"}
    assert set(seen[switch:]) == {"v2"}

    sm.update_endpoint(EndpointName=name, EndpointConfigName=broken)
    deadline = time.monotonic() + 60
    while True:
        described = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] != "Updating":
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == second
    assert "rolled back" in described["FailureReason"]
    assert "the new weights do not load" in described["FailureReason"]
    body = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body="{}")
    assert json.loads(body["Body"].read()) == {"version": "v2"}
    sm.delete_endpoint(EndpointName=name)
