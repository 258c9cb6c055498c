"""Raw SigV4-signed JSON 1.1 requests, and checks that a reply is an error botocore can read.

botocore's client validates parameters before sending, so tests of the server's own checks
sign and send the bytes themselves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.parsers import create_parser

from support.server import SabioServer

JSON_11 = "application/x-amz-json-1.1"
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]*\", line \d+")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    code: str
    message: str
    request_id: str


def send(
    server: SabioServer,
    http: requests.Session,
    target: str | None,
    body: bytes,
    service: str = "sagemaker",
) -> Reply:
    """POST `body` to `/` signed for `service`; the error as botocore's JSON parser reads it."""
    headers = {"Content-Type": JSON_11}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=f"{server.url}/", data=body, headers=headers)
    SigV4Auth(Credentials("testing", "testing"), service, "us-east-1").add_auth(request)
    response = http.post(
        f"{server.url}/", data=body, headers=dict(request.headers.items()), timeout=30
    )
    parsed = create_parser("json").parse(
        {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "body": response.content,
        },
        None,
    )
    error = parsed.get("Error", {})
    return Reply(
        response.status_code,
        response.content,
        error.get("Code", ""),
        error.get("Message", ""),
        parsed.get("ResponseMetadata", {}).get("RequestId", ""),
    )


def problem(reply: Reply, codes: set[str] | None, status: int | None = 400) -> str | None:
    """Why `reply` is not a well-formed AWS error with one of `codes` (None: any) and `status`
    (None: any 4xx), or None if it is one."""
    text = reply.body.decode("utf-8", "replace")
    if _TRACEBACK.search(text):
        return f"traceback in the body: {text[:300]}"
    right_status = 400 <= reply.status < 500 if status is None else reply.status == status
    right_code = bool(reply.code) if codes is None else reply.code in codes
    if not (right_status and right_code):
        return f"{reply.status} {reply.code}: {reply.message[:300] or text[:300]}"
    try:
        body = json.loads(reply.body)
    except ValueError:
        return f"body is not JSON: {text[:300]}"
    if not isinstance(body, dict) or "__type" not in body or not reply.message:
        return f"not an AWS JSON error: {text[:300]}"
    if not reply.request_id:
        return "no x-amzn-RequestId header"
    return None
