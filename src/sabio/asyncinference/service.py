"""InvokeEndpointAsync: check a request, persist it in the queue, and say where its answer
will appear. Nothing here knows HTTP; the runtime adapter hands over the headers and body."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sabio.artifacts.registry import ArtifactRegistry
from sabio.artifacts.uri import ObjectUri, parse
from sabio.asyncinference.endpoints import SERVING, AsyncEndpoint, AsyncEndpoints
from sabio.asyncinference.queue import AsyncRequest, InvocationQueue
from sabio.errors import RuntimeValidationError, ValidationError

DEFAULT_TTL_SECONDS = 6 * 3600
DEFAULT_TIMEOUT_SECONDS = 15 * 60
TTL_RANGE = (60, 21600)
TIMEOUT_RANGE = (1, 3600)

_HEADER = "x-amzn-sagemaker-"
_INFERENCE_ID = re.compile(r"^\S[\x20-\x7e]*$")
_FILENAME = re.compile(r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*$")
_EXTENSION = re.compile(r"^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$")


@dataclass(frozen=True)
class Accepted:
    inference_id: str
    output_location: str
    failure_location: str | None


class AsyncInferenceService:
    def __init__(
        self,
        queue: InvocationQueue,
        endpoints: AsyncEndpoints,
        artifacts: ArtifactRegistry,
        account_id: str,
        wake: Callable[[], None],
    ) -> None:
        self.queue = queue
        self.endpoints = endpoints
        self.artifacts = artifacts
        self.account_id = account_id
        self.wake = wake

    def accept(self, name: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        """Blocking: validate, persist, and only then return (so the 202 means "durable").

        `headers` are the request's `x-amzn-sagemaker-*` headers, lower-cased."""
        endpoint = self.endpoints.lookup(name)
        if endpoint is None:
            raise RuntimeValidationError(f"Endpoint {name} of account {self.account_id} not found.")
        if not isinstance(endpoint, AsyncEndpoint):
            raise RuntimeValidationError(
                f"Endpoint {endpoint.name} of account {self.account_id} is not configured for "
                "asynchronous inference: its endpoint configuration has no AsyncInferenceConfig. "
                "Use InvokeEndpoint."
            )
        if endpoint.status not in SERVING:
            raise RuntimeValidationError(
                f"Endpoint {endpoint.name} of account {self.account_id} is not in service "
                f"(status {endpoint.status})."
            )
        get = headers.get
        input_location = get(_HEADER + "inputlocation")
        if input_location and body:
            raise RuntimeValidationError(
                "Body and InputLocation are mutually exclusive; provide exactly one of them."
            )
        if not input_location and not body:
            raise RuntimeValidationError(
                "Provide the request payload: an InputLocation (an S3 URI) or an inline Body."
            )
        if input_location:
            self._require_input(input_location)
        ttl = _bounded(get(_HEADER + "requestttlseconds"), "RequestTTLSeconds", TTL_RANGE)
        timeout = _bounded(
            get(_HEADER + "invocationtimeoutseconds"), "InvocationTimeoutSeconds", TIMEOUT_RANGE
        )
        request_id = str(uuid.uuid4())
        inference_id = get(_HEADER + "inference-id") or request_id
        if len(inference_id) > 64 or not _INFERENCE_ID.match(inference_id):
            raise RuntimeValidationError(
                f"Value '{inference_id}' at 'inferenceId' failed to satisfy constraint: Member "
                "must be 1 to 64 printable characters, not starting with a space."
            )
        output_config = endpoint.output
        filename = get(_HEADER + "filename")
        if filename is not None and (len(filename) > 32 or not _FILENAME.match(filename)):
            raise RuntimeValidationError(
                f"Value '{filename}' at 'filename' failed to satisfy constraint: Member must "
                "satisfy regular expression pattern: ^(?!.*\\..*\\.)[a-zA-Z0-9][a-zA-Z0-9-_\\.]*$"
            )
        extension = get(_HEADER + "s3outputpathextension")
        if extension is not None and (len(extension) > 512 or not _EXTENSION.match(extension)):
            raise RuntimeValidationError(
                f"Value '{extension}' at 's3OutputPathExtension' failed to satisfy constraint: "
                "Member must be a relative S3 key path."
            )
        output = _location(
            output_config["S3OutputPath"], extension, filename or f"{inference_id}.out"
        )
        failure_path = output_config.get("S3FailurePath")
        failure = (
            _location(failure_path, extension, f"{inference_id}-error.out")
            if failure_path
            else None
        )
        now = time.time()
        request = {
            "EndpointName": endpoint.name,
            "ContentType": get(_HEADER + "content-type"),
            "Accept": get(_HEADER + "accept"),
            "CustomAttributes": get(_HEADER + "custom-attributes"),
            "InputLocation": input_location,
            "OutputLocation": str(output),
            "FailureLocation": str(failure) if failure else None,
            # Without an S3FailurePath the error object goes beside the results.
            "ErrorObject": str(
                failure
                or _location(output_config["S3OutputPath"], extension, f"{inference_id}-error.out")
            ),
            "RequestTTLSeconds": ttl or DEFAULT_TTL_SECONDS,
            # Kept with the request: its error notification still goes out if the endpoint
            # is deleted before it is answered.
            "NotificationConfig": endpoint.notifications or None,
        }
        self.queue.enqueue(
            AsyncRequest(
                id=request_id,
                endpoint=endpoint.name.lower(),
                inference_id=inference_id,
                received_at=now,
                expires_at=now + (ttl or DEFAULT_TTL_SECONDS),
                invocation_timeout=float(timeout or DEFAULT_TIMEOUT_SECONDS),
                request={k: v for k, v in request.items() if v is not None},
                body=body or None,
            )
        )
        self.wake()
        return Accepted(inference_id, str(output), str(failure) if failure else None)

    def _require_input(self, location: str) -> None:
        if not location.lower().startswith("s3://"):
            raise RuntimeValidationError(
                f"InputLocation must be an s3:// URI of an object, not '{location}'."
            )
        try:
            store, uri = self.artifacts.resolve(location)
            found = store.stat(uri) if uri.key and not uri.key.endswith("/") else None
        except ValidationError as error:
            raise RuntimeValidationError(f"InputLocation is not valid: {error.message}") from None
        if found is None:
            raise RuntimeValidationError(
                f"Could not find the input object {location}: no such key in bucket {uri.bucket}."
            )


def _bounded(value: str | None, member: str, bounds: tuple[int, int]) -> int | None:
    if value is None or value == "":
        return None
    low, high = bounds
    field = member[0].lower() + member[1:]
    if not value.strip().lstrip("-").isdigit():
        raise RuntimeValidationError(f"Value '{value}' at '{field}' must be an integer.")
    number = int(value)
    if number < low:
        raise RuntimeValidationError(
            f"Value '{number}' at '{field}' failed to satisfy constraint: Member must have "
            f"value greater than or equal to {low}"
        )
    if number > high:
        raise RuntimeValidationError(
            f"Value '{number}' at '{field}' failed to satisfy constraint: Member must have "
            f"value less than or equal to {high}"
        )
    return number


def _location(base: str, extension: str | None, name: str) -> ObjectUri:
    try:
        uri = parse(base)
        if extension:
            uri = uri.child(extension.strip("/"))
        return uri.child(name)
    except ValidationError as error:
        raise RuntimeValidationError(error.message) from None
