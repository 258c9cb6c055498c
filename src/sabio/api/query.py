"""What the AWS query-protocol services (SNS, STS, IAM, ...) share on Sabio's port.

botocore's query serializer sends a form-encoded `POST /` body (`Action=...&Version=...`) with
no `X-Amz-Target`, signed with SigV4 for the service's signing name; its query parser reads
errors only as XML (`<ErrorResponse><Error><Type><Code><Message>...`). A query request Sabio
does not serve therefore gets that XML, never the JSON the JSON 1.1 services answer.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.loaders import Loader
from starlette.requests import Request
from starlette.responses import Response

from sabio.api.errors import request_id
from sabio.asgi_body import content_length, read_capped
from sabio.errors import SabioError

XML = "text/xml"
FORM = "application/x-www-form-urlencoded"
# The namespace AWS's query front end puts on the errors it raises before any service runs.
AWS_FAULT_NAMESPACE = "http://webservices.amazon.com/AWSFault/2005-15-09"

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")


class InvalidAction(SabioError):
    code = "InvalidAction"
    status = 400


class MissingAction(SabioError):
    code = "MissingAction"
    status = 400


class QueryValidationError(SabioError):
    code = "ValidationError"
    status = 400


class IncompleteSignature(SabioError):
    code = "IncompleteSignature"
    status = 400


@dataclass(frozen=True)
class Signature:
    """Who signed a request (the access key id) and for which service (the signing name)."""

    access_key: str
    service: str


def signature(request: Request) -> Signature | None:
    found = _CREDENTIAL.search(request.headers.get("authorization", ""))
    return Signature(found.group(1), found.group(2)) if found else None


def is_signed_for(request: Request, service: str) -> bool:
    return f"/{service}/aws4_request" in request.headers.get("authorization", "")


def is_query(request: Request) -> bool:
    """A request as botocore's query serializer sends it: a form body and no X-Amz-Target."""
    if request.method != "POST" or "x-amz-target" in request.headers:
        return False
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == FORM


async def read_form(
    request: Request, max_bytes: int, too_large: SabioError | None = None
) -> dict[str, str]:
    """The query string's parameters, then the form body's (which win); a body over
    `max_bytes` raises `too_large` (the service's own error, or a ValidationError)."""
    form = dict(parse_qsl(request.url.query, keep_blank_values=True))
    if request.method == "POST":
        body = await read_capped(
            request.receive,
            content_length(request.headers.get("content-length")),
            max_bytes,
            too_large
            or QueryValidationError(f"The request body is larger than {max_bytes} bytes."),
        )
        form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return form


def xml_error(error: SabioError, rid: str, namespace: str) -> Response:
    """The one XML error shape of the query protocol, as botocore's `QueryParser` reads it."""
    fault = "Receiver" if error.status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{namespace}">\n  <Error>\n    <Type>{fault}</Type>\n'
        f"    <Code>{escape(error.code)}</Code>\n    <Message>{escape(error.message)}</Message>\n"
        f"  </Error>\n  <RequestId>{rid}</RequestId>\n</ErrorResponse>\n"
    )
    return Response(
        body, status_code=error.status, media_type=XML, headers={"x-amzn-RequestId": rid}
    )


async def unserved_action(form: dict[str, str], service: str | None) -> SabioError:
    """The error for an action Sabio does not serve: AWS's own wording when AWS has no such
    operation either, and a plain statement when AWS has it but Sabio does not serve it."""
    action, version = _printable(form.get("Action", "")), _printable(form.get("Version", ""))
    if not action:
        return MissingAction("The request is missing an action or a required parameter.")
    if service is not None and await asyncio.to_thread(_aws_has, service, action):
        return InvalidAction(f"Sabio does not serve the {service} action {action}.")
    return InvalidAction(f"Could not find operation {action} for version {version}")


class UnservedQuery:
    """Answers query-protocol requests that no served service claimed."""

    def __init__(self, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes

    async def handle(self, request: Request) -> Response:
        rid = request_id()
        try:
            form = await read_form(request, self.max_request_bytes)
        except SabioError as error:
            return xml_error(error, rid, AWS_FAULT_NAMESPACE)
        signed = signature(request)
        unserved = await unserved_action(form, signed.service if signed else None)
        return xml_error(unserved, rid, AWS_FAULT_NAMESPACE)


def _printable(text: str) -> str:
    """`text` without the control characters XML 1.0 cannot carry, so the error stays readable."""
    return "".join(c if c.isprintable() else "?" for c in text[:256])


@functools.cache
def _known_services() -> frozenset[str]:
    return frozenset(Loader().list_available_services("service-2"))


def _aws_has(service: str, action: str) -> bool:
    """Whether botocore's model of `service` (by signing name, which for the query services is
    the model's name) has the operation `action`."""
    if service not in _known_services():
        return False
    return action in _operation_names(service)


@functools.lru_cache(maxsize=16)
def _operation_names(service: str) -> frozenset[str]:
    """A service's operation names only, for a few services at a time: requests may name any
    of botocore's hundreds of services, and their whole models would stay in memory."""
    model = Loader().load_service_model(service, "service-2")
    return frozenset(model.get("operations", {}))
