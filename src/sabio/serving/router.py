"""The runtime router: picks a variant by weight (or `TargetVariant`), picks a healthy instance,
and forwards the invocation over a pooled keep-alive connection to that instance's worker."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from sabio.errors import ModelNotReadyError, RuntimeValidationError
from sabio.serving.capture import CapturePolicy, CaptureWriter
from sabio.serving.response_stream import ResponseStream, open_stream
from sabio.serving.shadow import Mirror
from sabio.serving.upstream import UnixPool, UpstreamClosed, UpstreamResponse
from sabio.serving.worker_errors import model_error, timed_out, worker_lost
from sabio.telemetry.endpoint_metrics import EndpointMetrics, VariantMetrics

FORWARDED_HEADERS = (
    "content-type",
    "accept",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-inference-id",
    "x-amzn-sagemaker-target-model",
)
TARGET_MODEL = "x-amzn-sagemaker-target-model"


@dataclass
class Instance:
    """One worker process of a variant, reached over a Unix socket."""

    socket_path: str
    session: aiohttp.ClientSession | None = None
    healthy: bool = True
    outstanding: int = 0
    upstream: UnixPool | None = None

    async def post(
        self, body: bytes, headers: Mapping[str, str], timeout: float | None
    ) -> UpstreamResponse:
        """`POST /invocations` on the lean keep-alive pool (`sabio.serving.upstream`)."""
        pool = self.upstream
        if pool is None:
            pool = self.upstream = UnixPool(self.socket_path)
        return await pool.post("/invocations", body, headers, timeout)

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            connector = aiohttp.UnixConnector(path=self.socket_path, limit=0, keepalive_timeout=60)
            self.session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        return self.session

    async def close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.session is not None:
            await self.session.close()
            self.session = None


class ModelPool(Protocol):
    """The loaded models of a multi-model variant (`sabio.endpoints.multi_model`): `acquire`
    loads the target model if need be and returns the instance serving it, counted as busy
    (`outstanding`) until the variant's `release`."""

    async def acquire(self, target: str | None, request_id: str) -> Instance: ...


class Gate(Protocol):
    """Admission in front of a variant's instances (serverless variants): `enter` may refuse
    the invocation or wait until an instance is ready; every `enter` that returns is paired
    with one `leave`."""

    async def enter(self) -> None: ...

    def leave(self) -> None: ...


@dataclass
class Variant:
    name: str
    weight: float
    instances: list[Instance] = field(default_factory=list)
    timeout: aiohttp.ClientTimeout | None = None
    metrics: VariantMetrics | None = None
    gate: Gate | None = None
    # A multi-model variant's models, each served by its own instance.
    models: ModelPool | None = None
    _cycle: itertools.count[int] = field(default_factory=itertools.count)

    def pick(self) -> Instance | None:
        """The healthy instance with the fewest outstanding requests; ties go round robin."""
        instances = self.instances
        count = len(instances)
        if count == 1:
            only = instances[0]
            return only if only.healthy else None
        start = next(self._cycle)
        best: Instance | None = None
        for offset in range(count):
            instance = instances[(start + offset) % count]
            if instance.healthy and (best is None or instance.outstanding < best.outstanding):
                best = instance
        return best

    async def acquire(self, endpoint: str) -> Instance:
        """Pass the variant's gate and take the least busy healthy instance, counted as busy
        until the matching `release`; `endpoint` names the endpoint in the error when no
        instance is ready."""
        gate = self.gate
        if gate is not None:
            await gate.enter()
        instance = self.pick()
        if instance is None:
            if gate is not None:
                gate.leave()
            raise ModelNotReadyError(
                f"No instance of variant {self.name} of endpoint {endpoint} is ready; "
                "a replacement is starting. Retry shortly."
            )
        instance.outstanding += 1
        return instance

    def release(
        self, instance: Instance, status: int, started: int, sent: int, answered: int
    ) -> None:
        """Undo `acquire` and record the invocation (times from `time.perf_counter_ns`)."""
        instance.outstanding -= 1
        if self.gate is not None:
            self.gate.leave()
        if self.metrics is not None:
            self.metrics.record(status, started, sent, answered, len(self.instances))


@dataclass
class Route:
    """What the router knows of one endpoint."""

    name: str
    status: str
    variants: list[Variant] = field(default_factory=list)
    log_group: str = ""
    capture: CapturePolicy | None = None
    # Shadow variants get copies of production traffic (`sabio.serving.shadow`), never a client.
    shadows: list[Variant] = field(default_factory=list)

    def choose(self, target: str | None) -> Variant:
        if not self.variants:
            raise ModelNotReadyError(
                f"Endpoint {self.name} is starting its instances. Retry shortly."
            )
        if target is not None:
            for variant in self.variants:
                if variant.name.lower() == target.lower():
                    return variant
            raise RuntimeValidationError(
                f"The variant {target} does not exist on endpoint {self.name}."
            )
        if len(self.variants) == 1:
            return self.variants[0]
        weights = [v.weight for v in self.variants]
        if sum(weights) <= 0:
            raise RuntimeValidationError(f"Every variant of endpoint {self.name} has weight 0.")
        return random.choices(self.variants, weights=weights)[0]


@dataclass(frozen=True)
class Invocation:
    body: bytes
    content_type: str
    variant: str
    custom_attributes: str | None


class Router:
    def __init__(
        self,
        account_id: str,
        timeout_seconds: float,
        capture: CaptureWriter | None = None,
        metrics: EndpointMetrics | None = None,
    ) -> None:
        self.account_id = account_id
        self.capture = capture
        self.metrics = metrics if metrics is not None else EndpointMetrics()
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._routes: dict[str, Route] = {}
        self.mirror = Mirror(capture, self.timeout)

    def set_route(self, route: Route) -> None:
        self._routes[route.name.lower()] = route
        self.metrics.attach(route.name, [*route.variants, *route.shadows])

    def names(self) -> list[str]:
        return list(self._routes)

    def route(self, name: str) -> Route | None:
        return self._routes.get(name.lower())

    async def remove_route(self, name: str) -> None:
        route = self._routes.pop(name.lower(), None)
        if route is not None:
            self.metrics.detach(route.name)
            for variant in [*route.variants, *route.shadows]:
                for instance in variant.instances:
                    await instance.close()

    def _route_for(self, name: str) -> Route:
        route = self._routes.get(name.lower())
        if route is None:
            raise RuntimeValidationError(f"Endpoint {name} of account {self.account_id} not found.")
        if route.status not in ("InService", "Updating"):
            raise RuntimeValidationError(
                f"Endpoint {name} of account {self.account_id} is not in service "
                f"(status {route.status})."
            )
        return route

    async def invoke(
        self,
        name: str,
        body: bytes,
        forwarded: Mapping[str, str],
        target_variant: str | None,
        *,
        timeout: float | None = None,
        request_id: str = "",
    ) -> Invocation:
        """Forward to one instance; `forwarded` holds the headers the worker may see, and
        `timeout` (asynchronous inference's InvocationTimeoutSeconds) replaces the usual one.

        Invocations that reach a worker are recorded in the variant's metrics (see
        `sabio.telemetry.endpoint_metrics` for what ModelLatency and OverheadLatency cover)."""
        started = time.perf_counter_ns()
        route = self._route_for(name)
        variant = route.choose(target_variant)
        if route.shadows:
            self.mirror.copy(route, variant, body, forwarded)
        if variant.models is None and TARGET_MODEL not in forwarded:
            instance = await variant.acquire(name)
        else:
            instance = await _acquire_model(name, variant, forwarded, request_id)
        status = answered = 0
        sent = time.perf_counter_ns()
        try:
            limit = timeout or (variant.timeout or self.timeout).total
            response = await instance.post(body, forwarded, limit)
            payload = response.body
            answered = time.perf_counter_ns()
            status = response.status
            if status >= 400:
                raise model_error(status, payload, route.log_group)
            content_type = response.headers.get("content-type", "application/json")
            policy = route.capture
            if policy is not None and self.capture is not None and policy.sampled():
                self.capture.add_exchange(
                    route.name, variant.name, policy, body, forwarded, payload, content_type
                )
            return Invocation(
                body=payload,
                content_type=content_type,
                variant=variant.name,
                custom_attributes=response.headers.get("x-amzn-sagemaker-custom-attributes"),
            )
        except TimeoutError:
            raise timed_out(variant.name, route.log_group) from None
        except (UpstreamClosed, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            instance.healthy = False
            raise worker_lost(variant.name, exc, route.log_group) from None
        finally:
            variant.release(instance, status, started, sent, answered)

    async def invoke_stream(
        self, name: str, body: bytes, forwarded: Mapping[str, str], target_variant: str | None
    ) -> ResponseStream:
        """Like `invoke`, but return once the worker's status line arrives and stream its
        chunks (InvokeEndpointWithResponseStream; see `sabio.serving.response_stream`)."""
        started = time.perf_counter_ns()
        route = self._route_for(name)
        variant = route.choose(target_variant)
        if variant.models is not None or TARGET_MODEL in forwarded:
            raise RuntimeValidationError(
                f"Endpoint {name} is a multi-model endpoint or the request names a target "
                "model; InvokeEndpointWithResponseStream does not support target models."
            )
        if route.shadows:
            self.mirror.copy(route, variant, body, forwarded)
        timeout = variant.timeout or self.timeout
        return await open_stream(route, variant, body, forwarded, timeout, self.capture, started)

    async def close(self) -> None:
        await self.mirror.close()
        for name in list(self._routes):
            await self.remove_route(name)
        await asyncio.sleep(0)


async def _acquire_model(
    name: str, variant: Variant, forwarded: Mapping[str, str], request_id: str
) -> Instance:
    """The instance serving the request's `TargetModel` on a multi-model variant; a target
    model on a single-model variant is refused as SageMaker refuses it."""
    models = variant.models
    if models is None:
        raise RuntimeValidationError(
            f"Endpoint {name} is not a multi-model endpoint and does not support target model "
            "header."
        )
    return await models.acquire(forwarded.get(TARGET_MODEL), request_id)
