"""The one ASGI application: every protocol on one port, told apart by path and header."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sabio import __version__
from sabio.api.cloudwatch import RPC_V2_PATH as CLOUDWATCH_RPC_V2_PATH
from sabio.api.cloudwatch import TARGET_PREFIX as CLOUDWATCH_TARGET_PREFIX
from sabio.api.cloudwatch import CloudWatchApi
from sabio.api.control_plane import ControlPlane, Json11Service
from sabio.api.logs import TARGET_PREFIX as LOGS_TARGET_PREFIX
from sabio.api.logs import LogsApi
from sabio.api.query import UnservedQuery, is_query
from sabio.api.runtime import ASGIApp, Runtime
from sabio.api.s3.routing import S3Gateway
from sabio.api.sns import CERTIFICATE_PATH, SnsApi, is_sns
from sabio.api.sts import StsApi, is_sts


def create_app(
    control_plane: ControlPlane,
    logs: LogsApi,
    on_startup: Callable[[], Awaitable[None]],
    on_shutdown: Callable[[], Awaitable[None]],
    cloudwatch: CloudWatchApi | None = None,
    sns: SnsApi | None = None,
    autoscaling: Json11Service | None = None,
    sts: StsApi | None = None,
) -> Starlette:
    unserved_query = UnservedQuery(control_plane.max_request_bytes)

    async def aws_json(request: Request) -> Response:
        """JSON 1.x services share `POST /`; the X-Amz-Target prefix names the service.
        Query-protocol services (form bodies) are told apart by their signing name."""
        if sns is not None and is_sns(request):
            return await sns.handle(request)
        if sts is not None and is_sts(request):
            return await sts.handle(request)
        if is_query(request):
            return await unserved_query.handle(request)
        target = request.headers.get("x-amz-target", "")
        if target.startswith(LOGS_TARGET_PREFIX):
            return await logs.handle(request)
        if cloudwatch is not None and target.startswith(CLOUDWATCH_TARGET_PREFIX):
            return await cloudwatch.handle_json(request)
        if autoscaling is not None and target.startswith(autoscaling.target_prefix):
            return await autoscaling.handle(request)
        return await control_plane.handle(request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def not_found(request: Request) -> Response:
        return JSONResponse(
            {"message": f"No route for {request.method} {request.url.path}"}, status_code=404
        )

    async def root_get(request: Request) -> Response:
        """SNS and STS over GET: signed requests, and the unsigned links in SNS's messages."""
        if sns is not None and is_sns(request):
            return await sns.handle(request)
        if sts is not None and is_sts(request):
            return await sts.handle(request)
        answer = await sns.handle_link(request) if sns is not None else None
        return answer if answer is not None else await not_found(request)

    async def sns_certificate(request: Request) -> Response:
        answer = await sns.certificate(request) if sns is not None else None
        return answer if answer is not None else await not_found(request)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await on_startup()
        try:
            yield
        finally:
            await on_shutdown()

    routes = [
        Route("/", aws_json, methods=["POST"]),
        Route("/", root_get, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route(CERTIFICATE_PATH, sns_certificate, methods=["GET"]),
    ]
    if cloudwatch is not None:
        routes.append(Route("/metrics", cloudwatch.prometheus, methods=["GET"]))
        routes.append(Route(CLOUDWATCH_RPC_V2_PATH, cloudwatch.handle_rpc_v2, methods=["POST"]))
    routes.append(
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    )
    return Starlette(routes=routes, lifespan=lifespan)


def create_asgi(
    control_plane: ControlPlane,
    runtime: Runtime,
    logs: LogsApi,
    on_startup: Callable[[], Awaitable[None]],
    on_shutdown: Callable[[], Awaitable[None]],
    s3: S3Gateway | None = None,
    cloudwatch: CloudWatchApi | None = None,
    sns: SnsApi | None = None,
    autoscaling: Json11Service | None = None,
    sts: StsApi | None = None,
) -> ASGIApp:
    """The runtime's raw handler in front of everything else, and the S3 gateway (which
    claims only requests signed for S3) in front of that."""
    handler = runtime.wrap(
        create_app(control_plane, logs, on_startup, on_shutdown, cloudwatch, sns, autoscaling, sts)
    )
    return s3.wrap(handler) if s3 is not None else handler
