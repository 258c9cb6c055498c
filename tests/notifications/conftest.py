"""A Sabio server with short delivery retries, an SNS client for it, and an HTTP listener
that records what SNS delivers (and can be told to fail)."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.server import SabioServer, running_server

SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip

FAST_RETRIES = {
    "SABIO_NOTIFICATION_DELIVERY_ATTEMPTS": "4",
    "SABIO_NOTIFICATION_RETRY_BASE_SECONDS": "0.1",
    "SABIO_NOTIFICATION_RETRY_MAX_SECONDS": "0.4",
    "SABIO_NOTIFICATION_DELIVERY_TIMEOUT_SECONDS": "3",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Listener:
    """An HTTP endpoint on a free loopback port; answers 500 to the next `failures` POSTs."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.failures = 0
        self._changed = threading.Condition()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with listener._changed:
                    status = 500 if listener.failures > 0 else 200
                    listener.failures = max(0, listener.failures - 1)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    listener.received.append(Received(self.path, headers, body, status))
                    listener._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not delivered in time; got {self.received}")
                self._changed.wait(left)
            return list(self.received)

    def of_type(self, message_type: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.headers["x-amz-sns-message-type"] == message_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="session")
def sns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    with running_server(tmp_path_factory.mktemp("sns-home"), FAST_RETRIES) as running:
        yield running


def sns_client(server: SabioServer) -> Any:
    return boto3.client("sns", endpoint_url=server.url, region_name="us-east-1")


@pytest.fixture
def sns(sns_server: SabioServer) -> Any:
    return sns_client(sns_server)


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running


@pytest.fixture
def home(sns_server: SabioServer) -> Path:
    return sns_server.home


def _subscribe_confirmed(
    sns: Any, listener: Listener, path: str = "/hook", **attributes: str
) -> tuple[str, str, dict[str, Any]]:
    """A new topic with the listener subscribed at `path` and confirmed by following the
    SubscribeURL: the topic ARN, the subscription ARN and the confirmation document."""
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    return (topic, *_subscribe_to(sns, topic, listener, path, **attributes))


def _subscribe_to(
    sns: Any, topic: str, listener: Listener, path: str, **attributes: str
) -> tuple[str, dict[str, Any]]:
    endpoint = listener.url + path
    extra = {"Attributes": attributes} if attributes else {}
    arn = sns.subscribe(
        TopicArn=topic, Protocol="http", Endpoint=endpoint, ReturnSubscriptionArn=True, **extra
    )["SubscriptionArn"]
    got = listener.wait_for(lambda got: any(_confirms(r, path) for r in got))
    document = [r for r in got if _confirms(r, path)][-1].json()
    with urllib.request.urlopen(document["SubscribeURL"], timeout=5) as response:
        assert arn in response.read().decode()
    return arn, document


def _confirms(received: Received, path: str) -> bool:
    kind = received.headers["x-amz-sns-message-type"]
    return received.path == path and kind == "SubscriptionConfirmation"


def _verify_signature(document: dict[str, Any]) -> None:
    """Check a message's signature the way SNS message validators do."""
    with urllib.request.urlopen(document["SigningCertURL"], timeout=5) as response:
        certificate = x509.load_pem_x509_certificate(response.read())
    text = "".join(
        f"{name}\n{document[name]}\n" for name in SIGNED[document["Type"]] if name in document
    )
    # SignatureVersion 1 is SHA1withRSA by definition.
    algorithm = hashes.SHA256() if document["SignatureVersion"] == "2" else hashes.SHA1()  # noqa: S303
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        base64.b64decode(document["Signature"]), text.encode(), padding.PKCS1v15(), algorithm
    )


@pytest.fixture
def subscribe_confirmed() -> Callable[..., tuple[str, str, dict[str, Any]]]:
    """`(sns, listener, path="/hook", **attributes) -> (topic, subscription, confirmation)`."""
    return _subscribe_confirmed


@pytest.fixture
def subscribe_to() -> Callable[..., tuple[str, dict[str, Any]]]:
    """`(sns, topic, listener, path, **attributes) -> (subscription, confirmation)`."""
    return _subscribe_to


@pytest.fixture
def verify_signature() -> Callable[[dict[str, Any]], None]:
    return _verify_signature
