"""UpdateEndpointWeightsAndCapacities with a ServerlessUpdateConfig: a running serverless
variant takes a new MaxConcurrency and ProvisionedConcurrency in place (the endpoint goes
Updating, then InService), keeps its MemorySizeInMB, answers the requests in flight, and keeps
the new values across a server restart."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from support.deploy import deploy, store_code_model, unique, wait_for_status
from support.server import SabioServer, running_server

IDLE_SECONDS = 1.5

SLEEPY = """\
import json, os, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    time.sleep(json.loads(body).get("sleep", 0))
    return json.dumps({"pid": os.getpid()}), "application/json"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """A server whose serverless workers stop after a short idle period."""
    env = {
        "SABIO_SERVERLESS_IDLE_SECONDS": str(IDLE_SECONDS),
        "SABIO_WORKER_STOP_GRACE_SECONDS": "2",
    }
    with running_server(tmp_path_factory.mktemp("serverless-update"), env) as running:
        yield running


@pytest.fixture
def clients(server: SabioServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """SageMaker, and a runtime that reports throttling at once instead of retrying it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    retries = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("sagemaker"), boto3.client("sagemaker-runtime", config=retries)


def deploy_serverless(server: SabioServer, sm: Any, tmp_path: Path, **serverless: int) -> str:
    name = unique("slsu")
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2, **serverless},
    }
    uri = store_code_model(server, tmp_path, SLEEPY, "sleepy")
    return deploy(sm, uri, name=name, variants=[variant], wait_attempts=600)


def update(sm: Any, name: str, **concurrency: int) -> None:
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "ServerlessUpdateConfig": concurrency}
        ],
    )


def in_service(sm: Any, name: str) -> dict[str, Any]:
    """The endpoint's one variant once the endpoint is InService again."""
    described = wait_for_status(sm, name, {"InService", "Failed"})
    assert described["EndpointStatus"] == "InService", described
    [variant] = described["ProductionVariants"]
    return dict(variant)


def workers(server: SabioServer, name: str) -> int:
    """The variant's running workers, as `/metrics` shows them."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("sabio_variant_instances{") and f'endpoint="{name}"' in line:
            return int(line.rsplit(" ", 1)[1])
    return 0


def invoke(runtime: Any, name: str, sleep: float = 0) -> dict[str, Any]:
    response = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=json.dumps({"sleep": sleep})
    )
    answer: dict[str, Any] = json.loads(response["Body"].read())
    return answer


@contextmanager
def in_flight(runtime: Any, name: str, count: int, sleep: float) -> Iterator[list[Any]]:
    """`count` invocations that each take `sleep` seconds, in flight for the block (which
    starts once they have reached the server); their answers once it ends."""
    answers: list[Any] = []

    def call() -> None:
        try:
            answers.append(invoke(runtime, name, sleep))
        except ClientError as error:
            answers.append(error.response["Error"]["Code"])

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    yield answers
    for thread in threads:
        thread.join(30)


def throttled(runtime: Any, name: str) -> str:
    """The message of the ThrottlingException the next invocation gets."""
    with pytest.raises(ClientError) as raised:
        invoke(runtime, name)
    error = raised.value.response
    assert error["Error"]["Code"] == "ThrottlingException", error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Error"]["Message"])


def cold_starts(name: str) -> float:
    """How many workers the variant has started (ModelSetupTime samples)."""
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="ModelSetupTime",
        Dimensions=[
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=3600,
        Statistics=["SampleCount"],
    )
    return float(sum(point["SampleCount"] for point in stats["Datapoints"]))


def test_max_concurrency_is_raised_and_lowered_in_place(
    server: SabioServer, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, runtime = clients
    name = deploy_serverless(server, sm, tmp_path, MaxConcurrency=1)
    with in_flight(runtime, name, 1, sleep=1.5) as answers:
        assert "maximum of 1 concurrent" in throttled(runtime, name)
    assert [set(a) for a in answers] == [{"pid"}]

    update(sm, name, MaxConcurrency=3)
    variant = in_service(sm, name)
    expected = {"MemorySizeInMB": 1024, "MaxConcurrency": 3}
    assert variant["CurrentServerlessConfig"] == variant["DesiredServerlessConfig"] == expected
    with in_flight(runtime, name, 3, sleep=2) as answers:
        assert "maximum of 3 concurrent" in throttled(runtime, name)
    assert len(answers) == 3 and all(isinstance(a, dict) for a in answers), answers

    # Lowered while two requests are in flight: both are answered, and the new limit holds.
    with in_flight(runtime, name, 2, sleep=4) as answers:
        update(sm, name, MaxConcurrency=1)
        assert in_service(sm, name)["CurrentServerlessConfig"]["MaxConcurrency"] == 1
        assert "maximum of 1 concurrent" in throttled(runtime, name)
    assert len(answers) == 2 and all(isinstance(a, dict) for a in answers), answers
    with in_flight(runtime, name, 1, sleep=1.5):
        assert "maximum of 1 concurrent" in throttled(runtime, name)
    assert "pid" in invoke(runtime, name)
    sm.delete_endpoint(EndpointName=name)


def test_provisioned_concurrency_grows_and_shrinks_the_warm_set_and_survives_a_restart(
    server: SabioServer, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, runtime = clients
    name = deploy_serverless(server, sm, tmp_path)
    assert workers(server, name) == 0

    update(sm, name, ProvisionedConcurrency=2)
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "Updating"
    [variant] = described["ProductionVariants"]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    grown = {"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 2}
    assert variant["DesiredServerlessConfig"] == grown
    variant = in_service(sm, name)
    assert variant["CurrentServerlessConfig"] == variant["DesiredServerlessConfig"] == grown
    assert workers(server, name) == 2  # warm before the endpoint is InService again

    time.sleep(IDLE_SECONDS + 1.5)
    assert workers(server, name) == 2  # never stopped for being idle
    started = cold_starts(name)
    with in_flight(runtime, name, 2, sleep=0.5) as answers:
        pass
    assert len({a["pid"] for a in answers}) == 2
    assert cold_starts(name) == started  # both served by warm workers

    update(sm, name, ProvisionedConcurrency=1)
    shrunk = {"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 1}
    assert in_service(sm, name)["CurrentServerlessConfig"] == shrunk
    assert workers(server, name) == 1
    warm = invoke(runtime, name)["pid"]

    server.stop()
    server.start()
    assert in_service(sm, name)["CurrentServerlessConfig"] == shrunk
    # The stored value is the one the restarted server applies: one warm worker.
    deadline = time.monotonic() + 30
    while workers(server, name) != 1:
        assert time.monotonic() < deadline, "the provisioned worker never came back"
        time.sleep(0.1)
    time.sleep(0.5)
    assert workers(server, name) == 1
    assert invoke(runtime, name)["pid"] != warm
    with in_flight(runtime, name, 2, sleep=1.5) as answers:
        assert "maximum of 2 concurrent" in throttled(runtime, name)
    sm.delete_endpoint(EndpointName=name)


def test_updates_sagemaker_refuses_leave_the_variant_as_it_was(
    server: SabioServer, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, _ = clients
    name = deploy_serverless(server, sm, tmp_path, MaxConcurrency=3, ProvisionedConcurrency=2)
    before = sm.describe_endpoint(EndpointName=name)["ProductionVariants"]

    def refusal(**change: Any) -> str:
        with pytest.raises(ClientError) as raised:
            sm.update_endpoint_weights_and_capacities(
                EndpointName=name,
                DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", **change}],
            )
        error = raised.value.response["Error"]
        assert error["Code"] == "ValidationException", error
        return str(error["Message"])

    assert refusal(ServerlessUpdateConfig={"MaxConcurrency": 2, "ProvisionedConcurrency": 3}) == (
        "Variant AllTraffic: ProvisionedConcurrency (3) must be less than or equal to "
        "MaxConcurrency (2)."
    )
    # A member not given keeps the variant's current value, and is checked as such.
    assert refusal(ServerlessUpdateConfig={"MaxConcurrency": 1}).endswith(
        "ProvisionedConcurrency (2) must be less than or equal to MaxConcurrency (1)."
    )
    assert refusal(ServerlessUpdateConfig={"ProvisionedConcurrency": 4}).endswith(
        "ProvisionedConcurrency (4) must be less than or equal to MaxConcurrency (3)."
    )
    assert "201" in refusal(ServerlessUpdateConfig={"MaxConcurrency": 201})
    assert refusal(DesiredInstanceCount=2) == (
        "Variant AllTraffic is serverless; it has no instance count."
    )
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"] == before
    sm.delete_endpoint(EndpointName=name)
