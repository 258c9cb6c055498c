"""STS `GetCallerIdentity`, and the XML errors of query-protocol requests Sabio does not serve,
through real boto3 clients (`sts`, `iam`, `ec2`) against a live server."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from support.server import SabioServer, running_server

ACCOUNT = "210987654321"
GET_CALLER_IDENTITY = "GetCallerIdentity"
ROLE = "arn:aws:iam::210987654321:role/SageMakerRole"


@pytest.fixture(scope="module")
def sabio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """A server with its own account id, so the answer is seen to come from the settings."""
    home: Path = tmp_path_factory.mktemp("sts")
    with running_server(home, env={"SABIO_ACCOUNT_ID": ACCOUNT}) as server:
        yield server


def client(server: SabioServer, service: str, key: str = "testing") -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="secret",
    )


def signed(server: SabioServer, service: str, form: str, method: str = "POST") -> dict[str, Any]:
    """A request signed for `service` with its parameters in a form body (POST, as botocore
    sends them) or in the query string (GET); the answer as botocore's query parser reads it."""
    post = method == "POST"
    url = f"{server.url}/" if post else f"{server.url}/?{form}"
    content_type = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    request = AWSRequest(
        method, url, data=form if post else None, headers=content_type if post else {}
    )
    SigV4Auth(Credentials("testing", "secret"), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(
        prepared.url,
        data=form.encode() if post else None,
        headers=dict(prepared.headers),
        method=method,
    )
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:
            status, headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, payload = error.code, error.headers, error.read()
    assert headers["Content-Type"].startswith("text/xml")
    answer = {"status_code": status, "headers": dict(headers), "body": payload}
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(GET_CALLER_IDENTITY).output_shape if status == 200 else None
    parsed: dict[str, Any] = create_parser("query").parse(answer, shape)
    return parsed


def test_get_caller_identity_is_the_configured_account_and_the_signing_key(sabio: SabioServer):
    first = client(sabio, "sts", "AKIAFIRSTKEY0000000").get_caller_identity()
    again = client(sabio, "sts", "AKIAFIRSTKEY0000000").get_caller_identity()
    other = client(sabio, "sts", "AKIASECONDKEY000000").get_caller_identity()

    assert first["Account"] == ACCOUNT
    assert first["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/AKIAFIRSTKEY0000000"
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", first["UserId"])
    assert again["UserId"] == first["UserId"]
    assert other["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/AKIASECONDKEY000000"
    assert other["UserId"] != first["UserId"]
    assert re.fullmatch(r"[0-9a-f-]{36}", first["ResponseMetadata"]["RequestId"])


def test_get_caller_identity_over_get(sabio: SabioServer):
    answer = signed(sabio, "sts", "Action=GetCallerIdentity&Version=2011-06-15", method="GET")
    assert answer["Account"] == ACCOUNT
    assert answer["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/testing"


@pytest.mark.parametrize(
    ("service", "call", "message"),
    [
        ("sts", lambda c: c.assume_role(RoleArn=ROLE, RoleSessionName="session"),
         "Sabio does not serve the sts action AssumeRole."),
        ("iam", lambda c: c.list_roles(), "Sabio does not serve the iam action ListRoles."),
        ("iam", lambda c: c.get_role(RoleName="SageMakerRole"),
         "Sabio does not serve the iam action GetRole."),
        ("ec2", lambda c: c.describe_instances(),
         "Sabio does not serve the ec2 action DescribeInstances."),
    ],
)  # fmt: skip
def test_unserved_query_actions_raise_a_client_error_botocore_parsed(
    sabio: SabioServer, service: str, call: Any, message: str
):
    with pytest.raises(ClientError) as raised:
        call(client(sabio, service))
    error = raised.value.response
    assert error["Error"] == {"Type": "Sender", "Code": "InvalidAction", "Message": message}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RequestId"]


def test_an_action_aws_does_not_have_gets_aws_wording(sabio: SabioServer):
    unknown = signed(sabio, "sts", "Action=GetCallerIdentities&Version=2011-06-15")
    assert unknown["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert unknown["Error"] == {
        "Type": "Sender",
        "Code": "InvalidAction",
        "Message": "Could not find operation GetCallerIdentities for version 2011-06-15",
    }

    # A control character XML cannot carry is replaced, so the reply still parses.
    garbled = signed(sabio, "iam", "Action=List%01Roles&Version=2010-05-08")
    assert garbled["Error"]["Code"] == "InvalidAction"
    assert (
        garbled["Error"]["Message"] == "Could not find operation List?Roles for version 2010-05-08"
    )

    no_action = signed(sabio, "iam", "Version=2010-05-08")
    assert no_action["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert no_action["Error"]["Code"] == "MissingAction"


def test_sagemaker_json_requests_are_not_taken_for_query_requests(sabio: SabioServer):
    with pytest.raises(ClientError) as raised:
        client(sabio, "sagemaker").describe_endpoint(EndpointName="nowhere")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
