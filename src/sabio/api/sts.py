"""STS `GetCallerIdentity` on Sabio's port (AWS query protocol, XML replies).

Clients ask STS who they are to learn the account id: the SageMaker SDK's telemetry, SDK v3's
`{customer_id}` S3 placeholders, and plenty of user code (`sagemaker-<region>-<account>`
bucket names). Sabio has one account (`Settings.account_id`) and no IAM users, so the caller
is the IAM user named after the access key id that signed the request: the same key always
gets the same identity. Every other STS action is answered with `InvalidAction`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from typing import Any
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from sabio import service_model
from sabio.api.errors import request_id
from sabio.api.query import (
    AWS_FAULT_NAMESPACE,
    XML,
    IncompleteSignature,
    is_signed_for,
    read_form,
    signature,
    unserved_action,
    xml_error,
)
from sabio.errors import SabioError

log = logging.getLogger("sabio.api")

SERVICE = "sts"
NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
GET_CALLER_IDENTITY = "GetCallerIdentity"


def is_sts(request: Request) -> bool:
    return is_signed_for(request, SERVICE)


def user_id(access_key: str) -> str:
    """An IAM user's unique id (`AIDA` and 17 characters of [A-Z2-7]), derived from the key so
    that it is stable across requests and restarts."""
    digest = hashlib.sha256(access_key.encode()).digest()
    return "AIDA" + base64.b32encode(digest).decode()[:17]


class StsApi:
    def __init__(self, account_id: str, max_request_bytes: int) -> None:
        self.account_id = account_id
        self.max_request_bytes = max_request_bytes

    async def handle(self, request: Request) -> Response:
        """A request signed for `sts`: `POST /` with a form body, or `GET /?Action=...`."""
        rid = request_id()
        try:
            form = await read_form(request, self.max_request_bytes)
            if form.get("Action") != GET_CALLER_IDENTITY:
                return xml_error(await unserved_action(form, SERVICE), rid, AWS_FAULT_NAMESPACE)
            signed = signature(request)
            if signed is None:
                raise IncompleteSignature(
                    "The request signature does not conform to AWS standards."
                )
            identity = self.identity(signed.access_key)
            body = await asyncio.to_thread(self._result, GET_CALLER_IDENTITY, identity, rid)
            return Response(body, media_type=XML, headers={"x-amzn-RequestId": rid})
        except SabioError as error:
            return xml_error(error, rid, NAMESPACE)
        except Exception:
            log.exception("unexpected error in STS")
            return xml_error(SabioError("An internal error occurred."), rid, NAMESPACE)

    def identity(self, access_key: str) -> dict[str, str]:
        return {
            "UserId": user_id(access_key),
            "Account": self.account_id,
            "Arn": f"arn:aws:iam::{self.account_id}:user/{access_key}",
        }

    @staticmethod
    def _result(action: str, values: dict[str, Any], rid: str) -> str:
        """`<{action}Response><{action}Result>` with the output members in the model's order."""
        model = service_model.operation(action, SERVICE)
        assert model is not None and model.output_shape is not None
        shape = model.output_shape
        wrapper = shape.serialization.get("resultWrapper", f"{action}Result")
        members = "".join(
            f"<{name}>{escape(str(values[name]))}</{name}>"
            for name in getattr(shape, "members", {})
            if values.get(name) is not None
        )
        return (
            f'<{action}Response xmlns="{NAMESPACE}"><{wrapper}>{members}</{wrapper}>'
            f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        )
