"""The runtime's answers to requests it cannot serve, as botocore reads them: a malformed
endpoint name is a ValidationError naming `endpointName`, and a path no runtime operation
claims is a 404 UnknownOperationException."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from support.server import SabioServer

PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
LONG = "a" * 200


def failure(call: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    response = raised.value.response
    error = response["Error"]
    return response["ResponseMetadata"]["HTTPStatusCode"], error["Code"], error["Message"]


def test_a_malformed_endpoint_name_is_a_validation_error_on_every_invoke_form(runtime: Any):
    too_long = (
        "1 validation error detected: "
        f"Value '{LONG}' at 'endpointName' failed to satisfy constraint: "
        "Member must have length less than or equal to 63"
    )
    calls = [
        (runtime.invoke_endpoint, {"Body": b"{}"}),
        (runtime.invoke_endpoint_with_response_stream, {"Body": b"{}"}),
        (runtime.invoke_endpoint_async, {"InputLocation": "s3://bucket/in.json"}),
    ]
    for call, extra in calls:
        assert failure(call, EndpointName=LONG, **extra) == (400, "ValidationError", too_long)

    status, code, message = failure(runtime.invoke_endpoint, EndpointName="my_model", Body=b"{}")
    assert (status, code) == (400, "ValidationError")
    assert message == (
        "1 validation error detected: Value 'my_model' at 'endpointName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {PATTERN}"
    )
    name = "b" * 63 + "_"
    status, code, message = failure(runtime.invoke_endpoint, EndpointName=name, Body=b"{}")
    assert message.startswith("2 validation errors detected: ")
    assert "length less than or equal to 63" in message and PATTERN in message


def test_a_well_formed_name_that_does_not_exist_is_still_not_found(runtime: Any):
    status, code, message = failure(runtime.invoke_endpoint, EndpointName="no-such", Body=b"x")
    assert (status, code) == (400, "ValidationError")
    assert message.startswith("Endpoint no-such of account ") and message.endswith("not found.")


def test_an_empty_endpoint_name_is_an_unknown_operation(runtime: Any):
    status, code, message = failure(runtime.invoke_endpoint, EndpointName="", Body=b"{}")
    assert (status, code) == (404, "UnknownOperationException")
    assert "POST /endpoints//invocations" in message


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/endpoints//invocations"),
        ("POST", "/endpoints/ep/nowhere"),
        ("POST", "/endpoints/ep/invocations/extra"),
        ("GET", "/endpoints/ep/invocations"),
        ("PUT", "/endpoints/"),
    ],
)
def test_unknown_runtime_paths_answer_in_aws_format(server: SabioServer, method: str, path: str):
    url = f"{server.url}{path}"
    request = AWSRequest(method=method, url=url, data=b"{}")
    SigV4Auth(Credentials("testing", "testing"), "sagemaker", "us-east-1").add_auth(request)
    response = requests.request(
        method, url, data=b"{}", headers=dict(request.headers.items()), timeout=30
    )
    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert response.headers["x-amzn-RequestId"]
    parsed = create_parser("rest-json").parse(
        {"status_code": 404, "headers": dict(response.headers), "body": response.content}, None
    )
    assert parsed["Error"]["Code"] == "UnknownOperationException"
    assert f"{method} {path}" in parsed["Error"]["Message"]
