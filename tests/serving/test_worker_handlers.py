"""The model worker running user inference handlers (`model_fn`/`input_fn`/`predict_fn`/
`output_fn`, `transform_fn`, with and without context) in a real worker process answering
real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from support.worker import SETOSA, VIRGINICA, Worker, npy


def test_ping_and_execution_parameters(plain: Worker) -> None:
    ping = plain.request("GET", "/ping")
    assert (ping.status, ping.body) == (200, b"")
    parameters = plain.request("GET", "/execution-parameters")
    assert parameters.status == 200
    assert parameters.json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_unknown_path_and_wrong_method(plain: Worker) -> None:
    assert plain.request("GET", "/models").status == 404
    wrong = plain.request("GET", "/invocations")
    assert (wrong.status, wrong.headers["allow"]) == (405, "POST")
    assert plain.request("POST", "/ping").status == 405


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps([SETOSA, VIRGINICA]), "application/json"),
        (json.dumps([SETOSA, VIRGINICA]), "application/json; charset=utf-8"),
        (json.dumps([SETOSA, VIRGINICA]).encode("utf-16"), "Application/JSON; charset=UTF-16"),
        ("5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", "text/csv"),
        (npy(np.array([SETOSA, VIRGINICA])), "application/x-npy"),
    ],
    ids=["json", "json-charset", "json-utf16", "csv", "npy"],
)
def test_user_handlers_decode_every_content_type(
    plain: Worker, labels: list[int], body: bytes | str, content_type: str
) -> None:
    reply = plain.invoke(body, content_type)
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"predictions": labels, "accept": "application/json"}


@pytest.mark.parametrize(
    ("accept", "content_type", "expected"),
    [
        ("text/csv;q=0.5, application/json", "application/json", None),
        ("application/json;q=0.2, text/csv", "text/csv", "0"),
        ("*/*", "application/json", None),
        ("application/*", "application/json", None),
    ],
)
def test_accept_lists_pick_the_preferred_type(
    plain: Worker, accept: str, content_type: str, expected: str | None
) -> None:
    reply = plain.invoke(json.dumps([SETOSA]), accept=accept)
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == content_type
    if expected is None:
        assert reply.json() == {"predictions": [0], "accept": "application/json"}
    else:
        assert reply.text == expected


def test_user_errors_map_to_status_codes(plain: Worker) -> None:
    unsupported = plain.invoke("hello", "text/plain")
    assert (unsupported.status, unsupported.text) == (
        415,
        "UnsupportedType: cannot read text/plain",
    )

    bad_json = plain.invoke("[[5.1, 3.5,", "application/json")
    assert bad_json.status == 400
    assert "JSONDecodeError" in bad_json.text

    failing = plain.invoke(json.dumps([[-1.0, 3.5, 1.4, 0.2]]))
    assert (failing.status, failing.text) == (500, "ValueError: negative measurements")
    assert failing.headers["content-type"].startswith("text/plain")
    assert "Traceback" in plain.logs()


def test_handlers_taking_context(context_worker: Worker) -> None:
    reply = context_worker.request(
        "POST",
        "/invocations",
        json.dumps([SETOSA]),
        {"Content-Type": "application/json", "X-Test-Tag": "blue"},
    )
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/vnd.iris+json"
    assert reply.headers["x-model-tag"] == "iris"
    body = reply.json()
    assert body["predictions"] == [0]
    assert body["tag"] == "blue"
    assert body["gpu_id"] is None
    assert body["pre_model_dir"] is True
    assert isinstance(body["warm"], list)
    assert (Path(body["model_dir"]) / "model.joblib").is_file()


def test_transform_fn_from_submit_directory_and_program(transform: Worker) -> None:
    reply = transform.invoke(json.dumps([SETOSA, VIRGINICA]), accept="application/json")
    assert reply.status == 200, reply.text
    assert reply.json() == {"labels": ["setosa", "virginica"], "content_type": "application/json"}
    assert (transform.workdir / "model" / "src" / "serve.py").is_file()

    custom = transform.invoke(json.dumps([SETOSA]), accept="application/vnd.labels+json")
    assert custom.status == 200, custom.text
    assert custom.headers["content-type"] == "application/vnd.labels+json"
