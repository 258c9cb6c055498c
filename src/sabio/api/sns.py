"""The SNS API (AWS query protocol) on Sabio's port.

SNS clients are told apart from the other services on `POST /` by their signature: SigV4
with service `sns` in the credential scope. Requests are form-encoded `Action=...&Version=...`
bodies, decoded by walking the operation's input shape in botocore's `sns` model; replies and
errors are XML in the SNS namespace, shaped by the output shape. The links SNS puts in the
messages it delivers (`SubscribeURL`, `UnsubscribeURL`) are plain `GET /?Action=...` requests
that carry no signature, so those two actions are also served over GET, and the signing
certificate is served at its `SigningCertURL`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.model import ListShape, MapShape, Shape, StructureShape
from starlette.requests import Request
from starlette.responses import Response

from sabio import service_model
from sabio.api.errors import request_id
from sabio.api.query import is_signed_for, read_form, xml_error
from sabio.errors import SabioError
from sabio.notifications.batch import publish_batch
from sabio.notifications.errors import (
    InternalError,
    InvalidAction,
    InvalidParameter,
    invalid,
    missing,
)
from sabio.notifications.publishing import Notifications, refuse_fifo_members
from sabio.notifications.tagging import TopicTags, check_tags

log = logging.getLogger("sabio.api")

SERVICE = "sns"
NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"
XML = "text/xml"
# Actions a subscriber reaches by following a link in a message, without signing.
LINK_ACTIONS = ("ConfirmSubscription", "Unsubscribe")
CERTIFICATE_PATH = "/SimpleNotificationService-{digest}.pem"

Operation = Callable[[dict[str, Any], str], dict[str, Any]]


def is_sns(request: Request) -> bool:
    return is_signed_for(request, SERVICE)


class SnsApi:
    def __init__(self, notifications: Notifications, max_request_bytes: int) -> None:
        self.notifications = notifications
        self.topics = notifications.topics
        self.tags = TopicTags(notifications.topics)
        self.max_request_bytes = max_request_bytes
        self.operations: dict[str, Operation] = {
            "CreateTopic": self._create_topic,
            "DeleteTopic": self._delete_topic,
            "ListTopics": self._list_topics,
            "GetTopicAttributes": self._get_topic_attributes,
            "SetTopicAttributes": self._set_topic_attributes,
            "Subscribe": self._subscribe,
            "ConfirmSubscription": self._confirm_subscription,
            "Unsubscribe": self._unsubscribe,
            "ListSubscriptions": self._list_subscriptions,
            "ListSubscriptionsByTopic": self._list_subscriptions_by_topic,
            "GetSubscriptionAttributes": self._get_subscription_attributes,
            "SetSubscriptionAttributes": self._set_subscription_attributes,
            "Publish": self._publish,
            "PublishBatch": self._publish_batch,
            "ListTagsForResource": self._list_tags_for_resource,
            "TagResource": self._tag_resource,
            "UntagResource": self._untag_resource,
        }

    async def handle(self, request: Request) -> Response:
        """A signed `POST /` (form body) or `GET /?Action=...`."""
        rid = request_id()
        try:
            too_large = invalid("Request", "The request is too large")
            form = await read_form(request, self.max_request_bytes, too_large)
            return await self._dispatch(form, request, rid, signed=True)
        except SabioError as error:
            return error_response(error, rid)

    async def handle_link(self, request: Request) -> Response | None:
        """An unsigned `GET /?Action=ConfirmSubscription|Unsubscribe&...` from a message's
        link; None when the query names no action (not an SNS request)."""
        form = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if "Action" not in form:
            return None
        rid = request_id()
        if form["Action"] not in LINK_ACTIONS:
            return error_response(_unknown_action(form["Action"]), rid)
        return await self._dispatch(form, request, rid, signed=False)

    async def certificate(self, request: Request) -> Response | None:
        signer = self.notifications.signer
        name = f"SimpleNotificationService-{request.path_params.get('digest')}.pem"
        if name != await asyncio.to_thread(lambda: signer.certificate_name):
            return None
        return Response(signer.certificate_pem, media_type="text/plain")

    async def _dispatch(
        self, form: dict[str, str], request: Request, rid: str, *, signed: bool
    ) -> Response:
        action = form.get("Action", "")
        try:
            operation = self.operations.get(action)
            model = service_model.operation(action, SERVICE)
            if operation is None or model is None:
                raise _unknown_action(action)
            params = _decode(model.input_shape, form, "") if model.input_shape else {}
            params = params or {}
            for name in getattr(model.input_shape, "required_members", []):
                if params.get(name) is None:
                    raise missing(name)
            params["__signed"] = signed
            base_url = str(request.base_url).rstrip("/")
            result = await asyncio.to_thread(operation, params, base_url)
            return Response(_result_xml(action, model.output_shape, result, rid), media_type=XML,
                            headers={"x-amzn-RequestId": rid})  # fmt: skip
        except SabioError as error:
            return error_response(error, rid)
        except Exception:
            log.exception("unexpected error in SNS %s", action)
            return error_response(InternalError("Internal Error"), rid)

    # Operations: decoded request -> output members, run in a worker thread.

    def _create_topic(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        if p.get("DataProtectionPolicy"):
            raise invalid("DataProtectionPolicy", "Sabio does not support data protection")
        tags = check_tags(p.get("Tags") or [])
        arn = self.topics.create_topic(p["Name"], p.get("Attributes") or {}, tags)
        return {"TopicArn": arn}

    def _delete_topic(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        self.topics.delete_topic(p["TopicArn"])
        return {}

    def _list_topics(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        arns, token = self.topics.list_topics(p.get("NextToken"))
        return {"Topics": [{"TopicArn": arn} for arn in arns], "NextToken": token}

    def _get_topic_attributes(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        return {"Attributes": self.topics.topic_attributes(p["TopicArn"])}

    def _set_topic_attributes(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        value = p.get("AttributeValue") or ""
        self.topics.set_topic_attribute(p["TopicArn"], p["AttributeName"], value)
        return {}

    def _subscribe(self, p: dict[str, Any], base_url: str) -> dict[str, Any]:
        arn = self.notifications.subscribe(
            p["TopicArn"],
            p["Protocol"],
            p.get("Endpoint"),
            p.get("Attributes") or {},
            return_arn=bool(p.get("ReturnSubscriptionArn")),
            base_url=base_url,
        )
        return {"SubscriptionArn": arn}

    def _confirm_subscription(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        arn = self.topics.confirm(
            p["TopicArn"],
            p["Token"],
            authenticated=p["__signed"],
            authenticate_on_unsubscribe=p.get("AuthenticateOnUnsubscribe"),
        )
        return {"SubscriptionArn": arn}

    def _unsubscribe(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        self.notifications.unsubscribe(p["SubscriptionArn"], authenticated=p["__signed"])
        return {}

    def _list_subscriptions(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        rows, token = self.topics.list_subscriptions(None, p.get("NextToken"))
        return {"Subscriptions": rows, "NextToken": token}

    def _list_subscriptions_by_topic(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        rows, token = self.topics.list_subscriptions(p["TopicArn"], p.get("NextToken"))
        return {"Subscriptions": rows, "NextToken": token}

    def _get_subscription_attributes(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        return {"Attributes": self.topics.subscription_attributes(p["SubscriptionArn"])}

    def _set_subscription_attributes(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        value = p.get("AttributeValue") or ""
        self.topics.set_subscription_attribute(p["SubscriptionArn"], p["AttributeName"], value)
        return {}

    def _publish(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        if p.get("PhoneNumber"):
            raise invalid("PhoneNumber", "Sabio does not deliver SMS messages")
        refuse_fifo_members(p)
        topic_arn = p.get("TopicArn") or p.get("TargetArn")
        if not topic_arn:
            raise invalid("TopicArn or TargetArn", "no value for required parameter")
        message_id = self.notifications.publish_message(
            topic_arn,
            p["Message"],
            subject=p.get("Subject"),
            structure=p.get("MessageStructure"),
            attributes=p.get("MessageAttributes"),
        )
        return {"MessageId": message_id}

    def _publish_batch(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        return publish_batch(self.notifications, p["TopicArn"], p["PublishBatchRequestEntries"])

    def _list_tags_for_resource(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        return {"Tags": self.tags.listed(p["ResourceArn"])}

    def _tag_resource(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        self.tags.tag(p["ResourceArn"], p["Tags"])
        return {}

    def _untag_resource(self, p: dict[str, Any], _: str) -> dict[str, Any]:
        self.tags.untag(p["ResourceArn"], p["TagKeys"])
        return {}


def error_response(error: SabioError, rid: str) -> Response:
    return xml_error(error, rid, NAMESPACE)


def _unknown_action(action: str) -> InvalidAction:
    return InvalidAction(f"The action {action} is not valid for this web service.")


# Query protocol decoding: `Name=v`, `List.member.N`, `Map.entry.N.key|value`, nested by dots.


def _decode(shape: Shape, form: dict[str, str], prefix: str) -> Any:
    if isinstance(shape, StructureShape):
        result: dict[str, Any] = {}
        for name, member in shape.members.items():
            key = f"{prefix}.{name}" if prefix else name
            if _present(form, key):
                result[name] = _decode(member, form, key)
        return result
    if isinstance(shape, ListShape):
        items = []
        for n in range(1, len(form) + 2):
            key = f"{prefix}.member.{n}"
            if not _present(form, key):
                break
            items.append(_decode(shape.member, form, key))
        return items
    if isinstance(shape, MapShape):
        entries: dict[str, Any] = {}
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        for n in range(1, len(form) + 2):
            entry = f"{prefix}.entry.{n}"
            if not _present(form, entry):
                break
            if f"{entry}.{key_name}" not in form:
                raise invalid(prefix.split(".")[0])
            entries[form[f"{entry}.{key_name}"]] = _decode(
                shape.value, form, f"{entry}.{value_name}"
            )
        return entries
    value = form.get(prefix, "")
    if shape.type_name == "boolean":
        if value not in ("true", "false"):
            raise InvalidParameter(f"Invalid parameter: {prefix}")
        return value == "true"
    if shape.type_name == "blob":
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise InvalidParameter(f"Invalid parameter: {prefix}") from None
    return value


def _present(form: dict[str, str], key: str) -> bool:
    return key in form or any(k.startswith(f"{key}.") for k in form)


def _result_xml(action: str, shape: Shape | None, result: dict[str, Any], rid: str) -> str:
    inner = ""
    if shape is not None:
        inner = f"<{action}Result>{_encode(shape, result)}</{action}Result>"
    metadata = f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata>"
    return f'<{action}Response xmlns="{NAMESPACE}">{inner}{metadata}</{action}Response>'


def _encode(shape: Shape, value: Any) -> str:
    if isinstance(shape, StructureShape):
        parts = []
        for name, member in shape.members.items():
            if value.get(name) is not None:
                parts.append(f"<{name}>{_encode(member, value[name])}</{name}>")
        return "".join(parts)
    if isinstance(shape, ListShape):
        return "".join(f"<member>{_encode(shape.member, item)}</member>" for item in value)
    if isinstance(shape, MapShape):
        return "".join(
            f"<entry><key>{escape(str(k))}</key><value>{_encode(shape.value, v)}</value></entry>"
            for k, v in value.items()
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))
