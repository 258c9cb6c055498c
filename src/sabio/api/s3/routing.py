"""The S3 gateway: S3 REST requests on Sabio's port, served from the artifact store.

S3 clients are told apart from every other client by their signature: SigV4 with service
`s3` in the credential scope (`Authorization` header or presigned `X-Amz-Credential`), or the
S3-only SigV2. SageMaker clients sign as `sagemaker` and CloudWatch Logs as `logs`, so the
check costs one header look-up before the runtime and control plane see a request. Requests
are path-style (`/bucket/key`), or virtual-hosted style (`Host: bucket.<base>`, path `/key`)
under the configured base host names."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from sabio.api.runtime import ASGIApp, Scope, Send
from sabio.api.s3 import buckets, copying, listing, multipart, objects
from sabio.api.s3.blocks import BlockPool
from sabio.api.s3.errors import (
    MethodNotAllowedError,
    NotImplementedS3Error,
    as_s3_error,
    error_xml,
)
from sabio.api.s3.wire import S3Request, base_headers
from sabio.artifacts.store import ArtifactStore
from sabio.asgi_body import Receive
from sabio.errors import SabioError

log = logging.getLogger("sabio.api.s3")

Handler = Callable[[S3Request], Awaitable[None]]

# Query parameters of the operations served here; any other (`?acl`, `?tagging`, `?policy`,
# ...) names an operation Sabio does not implement.
_KNOWN_PARAMETERS = frozenset(
    {
        "list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token",
        "start-after", "fetch-owner", "encoding-type", "uploads", "uploadId", "partNumber",
        "max-parts", "part-number-marker", "key-marker", "upload-id-marker", "max-uploads",
        "location", "versioning", "delete", "versionId", "x-id", "max-buckets", "bucket-region",
        "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "AWSAccessKeyId", "Signature", "Expires",
    }
)  # fmt: skip


_CUSTOMER_KEYS = (
    "x-amz-server-side-encryption-customer-",
    "x-amz-copy-source-server-side-encryption-customer-",
)


def is_s3(scope: Scope) -> bool:
    """Whether a request is signed for S3 (checked without decoding anything else)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return b"/s3/aws4_request" in value or value.startswith(b"AWS ")
    query: bytes = scope.get("query_string", b"")
    if b"X-Amz-Credential=" in query:
        return "/s3/aws4_request" in unquote(query.decode("latin-1"))
    return b"AWSAccessKeyId=" in query and b"Signature=" in query


def route(request: S3Request) -> Handler:
    """The operation a request names: by method, by whether it names a bucket and a key, and
    by its subresource parameters."""
    query, method = request.query, request.method
    unknown = sorted(p for p in query if p not in _KNOWN_PARAMETERS and not p.startswith("X-Amz-"))
    if unknown:
        raise NotImplementedS3Error(
            f"Sabio does not implement the S3 operation selected by ?{unknown[0]}.",
            method=method,
            resource_type=unknown[0],
        )
    if any(h.startswith(_CUSTOMER_KEYS) for h in request.headers):
        raise NotImplementedS3Error(
            "Sabio does not implement server-side encryption with customer-provided keys."
        )
    if not request.bucket:
        if method in ("GET", "HEAD"):
            return buckets.list_buckets
        raise MethodNotAllowedError(
            "The specified method is not allowed against this resource.", method=method
        )
    if not request.key:
        handler = _BUCKET_ROUTES.get((method, _subresource(query, _BUCKET_SUBRESOURCES)))
    else:
        copy = "x-amz-copy-source" in request.headers
        if method == "PUT" and "partNumber" in query and "uploadId" in query:
            return copying.upload_part_copy if copy else multipart.upload_part
        if method == "PUT" and copy:
            return copying.copy_object
        handler = _OBJECT_ROUTES.get((method, _subresource(query, _OBJECT_SUBRESOURCES)))
    if handler is None:
        raise MethodNotAllowedError(
            "The specified method is not allowed against this resource.", method=method
        )
    return handler


_BUCKET_SUBRESOURCES = ("location", "versioning", "uploads", "delete")
_OBJECT_SUBRESOURCES = ("uploads", "uploadId")


def _subresource(query: dict[str, str], names: tuple[str, ...]) -> str:
    return next((n for n in names if n in query), "")


_BUCKET_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", ""): listing.list_objects,
    ("GET", "location"): buckets.get_bucket_location,
    ("GET", "versioning"): buckets.get_bucket_versioning,
    ("GET", "uploads"): multipart.list_multipart_uploads,
    ("PUT", ""): buckets.create_bucket,
    ("HEAD", ""): buckets.head_bucket,
    ("DELETE", ""): buckets.delete_bucket,
    ("POST", "delete"): objects.delete_objects,
}
_OBJECT_ROUTES: dict[tuple[str, str], Handler] = {
    ("PUT", ""): objects.put_object,
    ("GET", ""): objects.get_object,
    ("HEAD", ""): objects.get_object,
    ("DELETE", ""): objects.delete_object,
    ("POST", "uploads"): multipart.create_multipart_upload,
    ("POST", "uploadId"): multipart.complete_multipart_upload,
    ("GET", "uploadId"): multipart.list_parts,
    ("DELETE", "uploadId"): multipart.abort_multipart_upload,
}


class S3Gateway:
    """Serves S3 requests over the store for `s3://`, built on first use.

    `external` names the S3-compatible endpoint when the platform stores artifacts there: then
    clients are sent to it rather than served through Sabio, which has no authentication yet
    and must not hand out access to a team's bucket."""

    def __init__(
        self,
        store: Callable[[], ArtifactStore],
        region: str,
        *,
        external: str | None = None,
        threads: int = 64,
        virtual_hosts: Sequence[str] = (),
    ) -> None:
        self._store_factory = store
        self.region = region
        self.external = external
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._store: ArtifactStore | None = None
        self._blocks = BlockPool()
        self._virtual_hosts = tuple(virtual_hosts)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and is_s3(scope):
                await self.handle(scope, receive, send)
                return
            await app(scope, receive, send)

        return dispatch

    def _run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="sabio-s3")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, functools.partial(function, *args))

    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        request: S3Request | None = None
        try:
            if self.external is not None:
                raise NotImplementedS3Error(
                    "This Sabio server keeps artifacts in the S3-compatible store at "
                    f"{self.external}; point AWS_ENDPOINT_URL_S3 there."
                )
            store = self._store or await self._run(self.store)  # built once, off the loop
            request = S3Request.from_scope(
                scope,
                receive,
                tracked,
                self._run,
                store,
                self.region,
                self._blocks,
                self._virtual_hosts,
            )
            await route(request)(request)
        except SabioError as error:
            if started:
                log.warning(
                    "S3 %s %s failed after the answer began: %s",
                    scope["method"],
                    scope["path"],
                    error,
                )
                return
            await self._send_error(scope, send, request, as_s3_error(error))
        except Exception:
            log.exception("unexpected error in S3 %s %s", scope["method"], scope["path"])
            if not started:
                internal = SabioError("We encountered an internal error. Please try again.")
                internal.code = "InternalError"
                await self._send_error(scope, send, request, internal)

    async def _send_error(
        self, scope: Scope, send: Send, request: S3Request | None, error: SabioError
    ) -> None:
        resource = request.resource if request is not None else scope["path"]
        request_id = request.request_id if request is not None else "0"
        headers = base_headers(request) if request is not None else [(b"connection", b"close")]
        body = (
            b""
            if scope["method"] == "HEAD" or error.status == 304
            else error_xml(error, resource, request_id)
        )
        if body:
            headers.append((b"content-type", b"application/xml"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
