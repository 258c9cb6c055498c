"""Malformed requests to every implemented SageMaker operation get an AWS error, never a 5xx.

The bad inputs come from botocore's own model of each operation: a valid request is built from
it with a fixed seed and then broken one member at a time. Requests are signed with SigV4 and
sent raw, because botocore's client would refuse most of them before they left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import botocore.session
import pytest
import requests
from botocore.model import OperationModel, ServiceModel

from support.malformed import Requests
from support.server import SabioServer, running_server
from support.signed_json import JSON_11, problem, send

SEED = 20261122
MAX_REQUEST_BYTES = 256 * 1024
BASES = 3
TARGET = "SageMaker."
_SHAPE_CODES = {"ValidationException", "SerializationException"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    home = tmp_path_factory.mktemp("malformed")
    with running_server(home, {"SABIO_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}) as running:
        yield running


@pytest.fixture(scope="module")
def model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def implemented(server: SabioServer, http: requests.Session, model: ServiceModel) -> list[str]:
    """Operations the server implements: those that read the body rather than refusing the name."""
    names = []
    for name in model.operation_names:
        reply = send(server, http, f"{TARGET}{name}", b"[]")
        if reply.code != "UnknownOperationException":
            names.append(name)
    return names


def assert_alive(server: SabioServer, http: requests.Session) -> None:
    reply = send(server, http, f"{TARGET}ListModels", b"{}")
    assert reply.status == 200, reply


def report(failures: list[str]) -> str:
    return f"{len(failures)} bad replies:\n" + "\n".join(failures[:40])


def operations(model: ServiceModel, names: list[str]) -> Iterator[OperationModel]:
    for name in names:
        yield model.operation_model(name)


def test_the_sweep_covers_the_core_operations(implemented: list[str]):
    core = {
        "CreateModel",
        "DescribeEndpoint",
        "CreateEndpointConfig",
        "CreateTrainingJob",
        "ListProcessingJobs",
        "StopTransformJob",
        "AddTags",
    }
    assert core <= set(implemented)


def test_unknown_operations_are_refused_by_name(server: SabioServer, http: requests.Session):
    for target in (
        f"{TARGET}NoSuchOperation",
        f"{TARGET}",
        "SageMaker",
        "Bogus_20200101.CreateModel",
        None,
    ):
        reply = send(server, http, target, b"{}")
        assert problem(reply, {"UnknownOperationException"}) is None, (target, reply)
    assert_alive(server, http)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "SerializationException"),
        (b'{"ModelName": }', "SerializationException"),
        (b"\xff\xfe\x00garbage", "SerializationException"),
        (b"[]", "SerializationException"),
        (b'"a string"', "SerializationException"),
        (b"42", "SerializationException"),
        (b"null", "SerializationException"),
        (b'[{"ModelName": "m"}]', "SerializationException"),
        (b"[" * 20_000 + b"]" * 20_000, "SerializationException"),
        (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "SerializationException"),
        (b'{"Weight": NaN}', "SerializationException"),
        (b'{"Weight": -Infinity}', "SerializationException"),
        (b'{"Weight": 1e999}', "SerializationException"),
        (b'{"Count": ' + b"9" * 5000 + b"}", "SerializationException"),
        (b'{"Name": "\\ud800"}', "SerializationException"),
    ],
    ids=[
        "truncated",
        "bad-token",
        "not-utf8",
        "list",
        "string",
        "number",
        "null",
        "list-of-one",
        "deep-list",
        "deep-object",
        "nan",
        "infinity",
        "overflowing-float",
        "5000-digit-integer",
        "unpaired-surrogate",
    ],
)
def test_bodies_that_are_not_a_json_object(
    server: SabioServer,
    http: requests.Session,
    implemented: list[str],
    body: bytes,
    code: str,
):
    failures = []
    for name in implemented:
        reply = send(server, http, f"{TARGET}{name}", body)
        why = problem(reply, {code})
        if why:
            failures.append(f"{name}: {why}")
    assert not failures, report(failures)
    assert_alive(server, http)


def test_cloudwatch_json_refuses_what_is_not_json(server: SabioServer, http: requests.Session):
    """CloudWatch's JSON 1.0 decoder holds bodies to the same rules as the control plane."""
    target = "GraniteServiceVersion20100801.ListMetrics"
    for body in (b"[" * 20_000 + b"]" * 20_000, b'{"Namespace": NaN}', b'{"Namespace": "\\udc00"}'):
        reply = send(server, http, target, body, "monitoring")
        assert problem(reply, {"SerializationException"}) is None, reply
    assert_alive(server, http)


def test_escaped_surrogate_pairs_are_json(server: SabioServer, http: requests.Session):
    """Only an unpaired surrogate is refused: an escaped pair is an ordinary character."""
    reply = send(server, http, f"{TARGET}ListModels", b'{"NextToken": "\\ud83d\\ude00"}')
    assert problem(reply, {"ValidationException"}) is None, reply
    assert "\U0001f600" in reply.message


def test_oversized_bodies_are_refused_and_the_server_carries_on(
    server: SabioServer, http: requests.Session
):
    huge = json.dumps({"ModelName": "m", "Pad": "x" * (MAX_REQUEST_BYTES * 4)}).encode()
    declared = send(server, http, f"{TARGET}CreateModel", huge)
    assert problem(declared, {"ValidationException"}, status=413) is None, declared
    assert str(MAX_REQUEST_BYTES) in declared.message

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(huge), 64 * 1024):
            yield huge[start : start + 64 * 1024]

    streamed = http.post(
        f"{server.url}/",
        data=chunks(),
        headers={"Content-Type": JSON_11, "X-Amz-Target": f"{TARGET}CreateModel"},
        timeout=30,
    )
    assert streamed.status_code == 413
    assert streamed.json()["__type"] == "ValidationException"
    assert_alive(server, http)


def test_each_broken_member_is_named_in_a_validation_error(
    server: SabioServer, http: requests.Session, model: ServiceModel, implemented: list[str]
):
    failures = []
    sent = 0
    for operation in operations(model, implemented):
        for seed in range(SEED, SEED + BASES):
            maker = Requests(seed)
            for mutation in maker.mutations(operation, maker.full(operation)):
                sent += 1
                body = json.dumps(mutation.body).encode()
                reply = send(server, http, f"{TARGET}{operation.name}", body)
                why = problem(reply, _SHAPE_CODES)
                named = f"at '{mutation.where}'" in reply.message
                if why is None and reply.code == "ValidationException" and not named:
                    why = f"error does not name the member: {reply.message[:300]}"
                if why:
                    label = f"{operation.name} [{mutation.kind}] at {mutation.where}"
                    failures.append(f"{label}: {why}")
    assert sent > 10 * len(implemented)
    assert not failures, report(failures)
    assert_alive(server, http)


def test_valid_requests_are_answered_without_a_server_error(
    server: SabioServer, http: requests.Session, model: ServiceModel, implemented: list[str]
):
    """Requests the model accepts reach the services; whatever they decide, it is not a 5xx."""
    failures = []
    for operation in operations(model, implemented):
        for seed in range(3):
            maker = Requests(SEED + seed)
            for body in (maker.minimal(operation), maker.full(operation)):
                reply = send(server, http, f"{TARGET}{operation.name}", json.dumps(body).encode())
                if reply.status == 200:
                    continue
                why = problem(
                    reply,
                    {
                        "ValidationException",
                        "ResourceNotFound",
                        "ResourceInUse",
                        "ResourceLimitExceeded",
                    },
                )
                if why is None and "validation error detected" in reply.message:
                    why = f"a valid request failed shape validation: {reply.message[:300]}"
                if why:
                    failures.append(f"{operation.name} {json.dumps(body)[:200]}: {why}")
    assert not failures, report(failures)
    assert_alive(server, http)


@pytest.mark.parametrize(
    ("service", "prefix"),
    [("application-autoscaling", "AnyScaleFrontendService."), ("logs", "Logs_20140328.")],
)
def test_the_other_json_services_answer_broken_requests_with_their_own_errors(
    server: SabioServer, http: requests.Session, service: str, prefix: str
):
    """Endpoint autoscaling and the Logs API share the control plane's protocol code."""
    model = botocore.session.get_session().get_service_model(service)
    failures = []
    for name in model.operation_names:
        if (
            send(server, http, f"{prefix}{name}", b"[]", service).code
            == "UnknownOperationException"
        ):
            continue
        operation = model.operation_model(name)
        for seed in range(SEED, SEED + BASES):
            maker = Requests(seed)
            base = maker.full(operation)
            for mutation in maker.mutations(operation, base):
                reply = send(
                    server, http, f"{prefix}{name}", json.dumps(mutation.body).encode(), service
                )
                why = problem(reply, None, status=None)
                if why:
                    failures.append(f"{name} [{mutation.kind}] at {mutation.where}: {why}")
    assert not failures, report(failures)
    assert_alive(server, http)


def test_unknown_names_are_not_found_in_sagemakers_words(
    server: SabioServer, http: requests.Session, model: ServiceModel, implemented: list[str]
):
    failures = []
    for operation in operations(model, implemented):
        if not operation.name.startswith(("Describe", "Delete", "Stop", "Update", "ListTags")):
            continue
        body = Requests(SEED).minimal(operation)
        reply = send(server, http, f"{TARGET}{operation.name}", json.dumps(body).encode())
        why = problem(reply, {"ValidationException", "ResourceNotFound"})
        if why is None and "Could not find" not in reply.message:
            why = f"not SageMaker's not-found wording: {reply.message[:300]}"
        if why:
            failures.append(f"{operation.name} {json.dumps(body)[:200]}: {why}")
    assert not failures, report(failures)


def test_the_server_logged_no_traceback(server: SabioServer, http: requests.Session):
    """Runs last: nothing in the sweep made the server or its controllers fail unexpectedly."""
    assert_alive(server, http)
    assert "Traceback" not in server.logs()
