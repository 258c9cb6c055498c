"""The dispatcher: an asyncio task in the server that claims queued asynchronous requests,
invokes the endpoint's workers through the router, and writes each answer to S3 once.

Per endpoint it keeps at most `MaxConcurrentInvocationsPerInstance` requests in flight for
every healthy instance; an endpoint with no instances (scaled to zero) keeps its requests
waiting. Claims are leases, renewed while the dispatcher lives: after a crash they run out and
the requests are claimed again, and the answer object (marked with the request's id) is never
written twice. Requests of an endpoint that is deleted are failed the same way, once each.

Data capture needs nothing here: `Router.invoke` records a sampled exchange for asynchronous
requests as for real-time ones, taking the content type and inference id from the headers the
dispatcher forwards, and the server stops the dispatcher before the capture writer flushes.

With no asynchronous endpoint the dispatcher does not poll at all: the endpoint controller
tells it (`endpoints_changed`) when an endpoint's route or record changes, and a new request
wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sabio.artifacts.registry import ArtifactRegistry
from sabio.artifacts.store import ObjectMetadata
from sabio.asyncinference.backlog import BacklogMetrics
from sabio.asyncinference.endpoints import SERVING, AsyncEndpoint, AsyncEndpoints
from sabio.asyncinference.messages import ERROR_TOPIC, SUCCESS_TOPIC, notification
from sabio.asyncinference.queue import AsyncRequest, InvocationQueue
from sabio.asyncinference.variant_metrics import (
    EXPIRED_REQUESTS,
    INVOCATION_FAILURES,
    NOTIFICATION_FAILURES,
    REQUEST_DOWNLOAD_FAILURES,
    REQUEST_DOWNLOAD_LATENCY,
    RESPONSE_UPLOAD_FAILURES,
    RESPONSE_UPLOAD_LATENCY,
    AsyncVariantMetrics,
)
from sabio.errors import ModelError, ModelNotReadyError, SabioError
from sabio.notifications.publisher import Publisher
from sabio.reconcile import ReconcileLoop
from sabio.serving.router import Router

log = logging.getLogger("sabio.asyncinference")

REQUEST_MARK = "inference-request"
"""User metadata on an answer object: the id of the request it answers."""
_REFRESH_SECONDS = 1.0
_EXPIRE_BATCH = 100
_MAX_ATTEMPTS = 5  # deliveries of a request whose answer cannot be written (say, no bucket)
_T = TypeVar("_T")


class Dispatcher(ReconcileLoop):
    def __init__(
        self,
        queue: InvocationQueue,
        endpoints: AsyncEndpoints,
        router: Router,
        artifacts: ArtifactRegistry,
        publisher: Publisher | None,
        *,
        region: str,
        lease_seconds: float,
        interval: float,
        backlog: BacklogMetrics | None = None,
        variant_metrics: AsyncVariantMetrics | None = None,
    ) -> None:
        super().__init__(interval)
        self.queue = queue
        self.endpoints = endpoints
        self.router = router
        self.artifacts = artifacts
        self.publisher = publisher
        self.region = region
        self.lease_seconds = lease_seconds
        self.backlog = backlog
        self.variant_metrics = variant_metrics
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        self._held: dict[str, AsyncRequest] = {}
        self._refreshed = 0.0
        self._endpoints_changed = False
        self._more = False  # a sweep of expired or abandoned requests filled its batch
        self._heartbeat: asyncio.Task[None] | None = None
        self.polls = 0
        """Passes that read the queue or the endpoint records (`/metrics`)."""

    async def start(self) -> None:
        await super().start()
        self._heartbeat = asyncio.create_task(self._renew_leases(), name="async-leases")

    async def stop(self) -> None:
        """Stop claiming, cut off what is in flight and hand it back to the queue."""
        await self.stop_loop()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        tasks = [t for group in self._in_flight.values() for t in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        held = list(self._held.values())
        self._held.clear()
        for request in held:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.queue.release, request)

    def in_flight(self, endpoint: str) -> int:
        return len(self._in_flight.get(endpoint.lower(), ()))

    def endpoints_changed(self) -> None:
        """An endpoint's route or record changed (it serves, was updated, failed or is gone):
        read the endpoints again now. Safe to call from any thread."""
        self._endpoints_changed = True
        self.notify()

    # The loop

    def watching(self) -> bool:
        return (
            bool(self.endpoints.cached())
            or self._more
            or any(group for group in self._in_flight.values())
        )

    async def reconcile(self) -> None:
        now = time.time()
        if self._endpoints_changed or now - self._refreshed >= _REFRESH_SECONDS:
            self._endpoints_changed = False
            await self._sweep(now)
        known = self.endpoints.cached()
        for key, endpoint in known.items():
            free = self.capacity(endpoint) - self.in_flight(key)
            if free <= 0:
                continue
            self.polls += 1
            claimed = await asyncio.to_thread(
                self.queue.claim, key, free, self.lease_seconds, time.time()
            )
            for request in claimed:
                self._spawn(request, self._answer)

    async def _sweep(self, now: float) -> None:
        """Read the endpoints again; fail requests that expired or whose endpoint is gone."""
        self.polls += 1
        known = await asyncio.to_thread(self.endpoints.refresh)
        self._refreshed = now
        # SageMaker publishes no Invocations for asynchronous endpoints (see metrics docs).
        self.router.metrics.mark_asynchronous(known)
        expired = await asyncio.to_thread(self.queue.expired, now, _EXPIRE_BATCH)
        for request in expired:
            self._spawn(request, self._expire)
        abandoned = await asyncio.to_thread(
            self.queue.abandoned, self.endpoints.present(), _EXPIRE_BATCH, self.lease_seconds, now
        )
        for request in abandoned:
            self._spawn(request, self._abandon)
        self._more = _EXPIRE_BATCH in (len(expired), len(abandoned))
        await self._sample_backlog()

    async def _sample_backlog(self) -> None:
        if self.backlog is None:
            return
        known = self.endpoints.cached()
        backlogs = await asyncio.to_thread(self.queue.backlog, list(known))
        for key, endpoint in known.items():
            self.backlog.record(endpoint.name, backlogs.get(key), self.healthy_instances(key))
        self.backlog.forget(set(known))

    def capacity(self, endpoint: AsyncEndpoint) -> int:
        """How many requests the endpoint's healthy instances may work on at once."""
        route = self.router.route(endpoint.name)
        if route is None or route.status not in SERVING:
            return 0
        healthy = sum(1 for v in route.variants for i in v.instances if i.healthy)
        return healthy * endpoint.concurrency_per_instance

    def healthy_instances(self, endpoint: str) -> int:
        route = self.router.route(endpoint)
        if route is None:
            return 0
        return sum(1 for v in route.variants for i in v.instances if i.healthy)

    def _spawn(
        self,
        request: AsyncRequest,
        work: Callable[[AsyncRequest], Awaitable[None]],
    ) -> None:
        group = self._in_flight.setdefault(request.endpoint, set())
        self._held[request.id] = request

        async def run() -> None:
            try:
                await work(request)
            except asyncio.CancelledError:
                raise
            except Exception:
                if request.attempts >= _MAX_ATTEMPTS:
                    log.exception("answering async request %s failed; giving up", request.id)
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.queue.complete, request)
                else:
                    log.exception("answering async request %s failed; retrying", request.id)
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.queue.release, request)
            finally:
                self._held.pop(request.id, None)
                group.discard(task)
                self.notify()

        task = asyncio.create_task(run(), name=f"async-{request.id}")
        group.add(task)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            tokens = sorted({r.lease_token for r in self._held.values() if r.lease_token})
            if tokens:
                try:
                    await asyncio.to_thread(
                        self.queue.extend, tokens, self.lease_seconds, time.time()
                    )
                except Exception:
                    log.exception("renewing the leases of async requests failed")

    # Answering one request

    async def _answer(self, request: AsyncRequest) -> None:
        spec = request.request
        redelivered = request.attempts > 1
        if redelivered and await asyncio.to_thread(self._answered, request):
            await asyncio.to_thread(self.queue.complete, request)
            return
        started = time.time()
        variant = self._variant(spec["EndpointName"])
        failures: tuple[str, ...] = (REQUEST_DOWNLOAD_FAILURES, INVOCATION_FAILURES)
        try:
            if request.body is None:
                (body, stored_type), took = await asyncio.to_thread(
                    _timed, self._read_input, spec["InputLocation"]
                )
                self._time(request, variant, REQUEST_DOWNLOAD_LATENCY, took)
            else:
                body, stored_type = request.body, None
            failures = (INVOCATION_FAILURES,)
            forwarded = {"x-amzn-sagemaker-inference-id": request.inference_id}
            for header, member in (
                ("content-type", "ContentType"),
                ("accept", "Accept"),
                ("x-amzn-sagemaker-custom-attributes", "CustomAttributes"),
            ):
                if spec.get(member):
                    forwarded[header] = spec[member]
            if stored_type and "content-type" not in forwarded:
                forwarded["content-type"] = stored_type
            variant = self._still_routed(spec["EndpointName"], variant)
            result = await self.router.invoke(
                spec["EndpointName"], body, forwarded, variant, timeout=request.invocation_timeout
            )
        except ModelNotReadyError:
            await asyncio.to_thread(self.queue.release, request)
            return
        except SabioError as error:
            self._count(request, variant, *failures)
            reason, payload = _failure_reason(error), _failure_body(error)
            await self._fail(request, reason, payload, variant, started)
            return
        except Exception:
            self._count(request, variant, *failures)
            raise
        try:
            wrote, took = await asyncio.to_thread(
                _timed,
                self._write_once,
                spec["OutputLocation"],
                result.body,
                result.content_type,
                request,
            )
        except Exception:
            self._count(request, variant, RESPONSE_UPLOAD_FAILURES, INVOCATION_FAILURES)
            raise
        if wrote:
            self._time(request, variant, RESPONSE_UPLOAD_LATENCY, took)
        if await asyncio.to_thread(self.queue.complete, request):
            await self._notify(request, True, result.content_type, None, result.body, variant)
            # Counted once: a lost lease means another attempt completes (and counts) it.
            self._processed(request, variant, started)

    def _variant(self, endpoint: str) -> str | None:
        """The production variant to answer the request, chosen by weight here so that its
        failures before and after the invocation count under it; None without a route."""
        route = self.router.route(endpoint)
        if route is None:
            return None
        try:
            return route.choose(None).name
        except SabioError:
            return None

    def _still_routed(self, endpoint: str, variant: str | None) -> str | None:
        """`variant` if the endpoint still routes to it, else a variant chosen anew: an
        UpdateEndpoint may have replaced the variants while the input was being read."""
        route = self.router.route(endpoint)
        if variant is None or route is None:
            return variant
        if any(v.name == variant for v in route.variants):
            return variant
        return self._variant(endpoint)

    def _count(self, request: AsyncRequest, variant: str | None, *metrics: str) -> None:
        if self.variant_metrics is not None and variant is not None:
            self.variant_metrics.count(request.request["EndpointName"], variant, *metrics)

    def _time(
        self, request: AsyncRequest, variant: str | None, metric: str, seconds: float
    ) -> None:
        if self.variant_metrics is not None and variant is not None:
            self.variant_metrics.timed(request.request["EndpointName"], variant, metric, seconds)

    def _processed(self, request: AsyncRequest, variant: str | None, started: float) -> None:
        if self.variant_metrics is not None and variant is not None:
            self.variant_metrics.processed(
                request.request["EndpointName"], variant, request.received_at, started
            )

    async def _expire(self, request: AsyncRequest) -> None:
        ttl = int(request.request.get("RequestTTLSeconds", 0))
        reason = (
            f"ClientError: Request {request.inference_id} expired: it waited longer than its "
            f"RequestTTLSeconds ({ttl} seconds) in the queue."
        )
        await self._fail(request, reason, reason.encode())
        # AWS counts expired requests per variant, though none took them up: they count under
        # the variant that would have, chosen by weight as for the requests answered.
        self._count(request, self._variant(request.request["EndpointName"]), EXPIRED_REQUESTS)

    async def _abandon(self, request: AsyncRequest) -> None:
        reason = (
            f"ClientError: Request {request.inference_id} was not processed: endpoint "
            f"{request.request['EndpointName']} was deleted before the request was answered."
        )
        await self._fail(request, reason, reason.encode())

    async def _fail(
        self,
        request: AsyncRequest,
        reason: str,
        payload: bytes,
        variant: str | None = None,
        started: float = 0.0,
    ) -> None:
        """Write the error object and notify; `variant` is the one that failed the request
        (none for requests that expired or whose endpoint is gone)."""
        location = request.request["ErrorObject"]
        try:
            wrote, took = await asyncio.to_thread(
                _timed, self._write_once, location, payload, "text/plain", request
            )
        except Exception:
            self._count(request, variant, RESPONSE_UPLOAD_FAILURES)
            raise
        if wrote:
            self._time(request, variant, RESPONSE_UPLOAD_LATENCY, took)
        if await asyncio.to_thread(self.queue.complete, request):
            await self._notify(request, False, None, reason, payload, variant)
            self._processed(request, variant, started)

    async def _notify(
        self,
        request: AsyncRequest,
        succeeded: bool,
        content_type: str | None,
        reason: str | None,
        payload: bytes,
        variant: str | None,
    ) -> None:
        endpoint = self.endpoints.cached().get(request.endpoint)
        # A deleted endpoint's topics travel with its requests.
        config: dict[str, Any] = (
            endpoint.notifications
            if endpoint is not None
            else request.request.get("NotificationConfig") or {}
        )
        topic = config.get("SuccessTopic" if succeeded else "ErrorTopic")
        if not topic or self.publisher is None:
            return
        include = SUCCESS_TOPIC if succeeded else ERROR_TOPIC
        message = notification(
            region=self.region,
            request=request.request,
            inference_id=request.inference_id,
            received_at=request.received_at,
            succeeded=succeeded,
            response_content_type=content_type,
            failure_reason=reason,
            response=payload
            if include in (config.get("IncludeInferenceResponseIn") or [])
            else None,
        )
        try:
            await self.publisher.publish(topic, message)
        except Exception as error:
            self._count(request, variant, NOTIFICATION_FAILURES)
            log.warning("publishing the result of %s to %s failed: %s", request.id, topic, error)

    # Blocking helpers (run in threads)

    def _answered(self, request: AsyncRequest) -> bool:
        """A redelivered request whose answer was written before the crash (a first delivery
        skips the check: nothing can have answered it yet)."""
        for location in (request.request["OutputLocation"], request.request["ErrorObject"]):
            store, uri = self.artifacts.resolve(location)
            info = store.stat(uri)
            if info is not None and info.metadata.user.get(REQUEST_MARK) == request.id:
                return True
        return False

    def _read_input(self, location: str) -> tuple[bytes, str | None]:
        """The input's bytes and its object's Content-Type, which stands for a request's missing
        ContentType as on SageMaker (the SageMaker SDK's `predict_async` sends none)."""
        store, uri = self.artifacts.resolve(location)
        try:
            with store.open_object(uri) as reader:
                return b"".join(reader.chunks()), reader.info.metadata.content_type
        except FileNotFoundError:
            raise ModelError(
                f"Could not read the input object {location}: it no longer exists.",
                OriginalStatusCode=0,
            ) from None

    def _write_once(
        self, location: str, payload: bytes, content_type: str | None, request: AsyncRequest
    ) -> bool:
        """Write the answer atomically, unless this request's answer is there already (False)."""
        store, uri = self.artifacts.resolve(location)
        if request.attempts > 1:
            info = store.stat(uri)
            if info is not None and info.metadata.user.get(REQUEST_MARK) == request.id:
                return False
        metadata = ObjectMetadata(content_type=content_type, user={REQUEST_MARK: request.id})
        store.write(uri, io.BytesIO(payload), metadata)
        return True


class PollCounter:
    """The dispatcher's `polls` as a `/metrics` counter: it stays flat while the server has no
    asynchronous endpoint."""

    name = "sabio_async_queue_polls_total"
    help = "Passes of the asynchronous inference dispatcher that read its queue or endpoints."

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def value(self) -> int:
        return self.dispatcher.polls


def _timed(work: Callable[..., _T], *args: Any) -> tuple[_T, float]:
    """`work(*args)` and the seconds it took, measured in the thread that does the work, so the
    wait for a free thread is not counted."""
    began = time.perf_counter()
    result = work(*args)
    return result, time.perf_counter() - began


def _failure_reason(error: SabioError) -> str:
    status = error.fields.get("OriginalStatusCode")
    if isinstance(error, ModelError) and status:
        kind = "client" if int(status) < 500 else "server"
        return (
            f"ClientError: Received {kind} error ({status}) from model. See the endpoint's log "
            "group for more information."
        )
    return f"ClientError: {error.message}"


def _failure_body(error: SabioError) -> bytes:
    original = error.fields.get("OriginalMessage")
    return str(original if original else error.message).encode()
