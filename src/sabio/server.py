"""The composition root: builds every part of a Sabio server from one `Settings`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sabio.api.app import create_asgi
from sabio.api.cloudwatch import CloudWatchApi
from sabio.api.control_plane import ControlPlane, Json11Service, Operation
from sabio.api.logs import LogsApi
from sabio.api.runtime import ASGIApp, Runtime
from sabio.api.runtime_async import AsyncRuntime
from sabio.api.s3.routing import S3Gateway
from sabio.api.sns import SnsApi
from sabio.api.sts import StsApi
from sabio.arns import ArnFactory
from sabio.artifacts import registry
from sabio.artifacts.registry import ArtifactRegistry
from sabio.artifacts.upload_sweep import UploadSweeper
from sabio.asyncinference.backlog import BacklogMetrics
from sabio.asyncinference.dispatcher import Dispatcher, PollCounter
from sabio.asyncinference.endpoints import AsyncEndpoints
from sabio.asyncinference.service import AsyncInferenceService
from sabio.asyncinference.sql_queue import SqlInvocationQueue
from sabio.asyncinference.variant_metrics import AsyncVariantMetrics
from sabio.autoscaling.alarms import AlarmService
from sabio.autoscaling.records import Arns as ScalingArns
from sabio.autoscaling.records import Records as ScalingRecords
from sabio.autoscaling.router_metrics import RouterMetricSource
from sabio.autoscaling.scaler import Scaler
from sabio.autoscaling.service import ScalingService
from sabio.compute.local import LocalBackend
from sabio.config import Settings
from sabio.endpoints.configs import EndpointConfigService
from sabio.endpoints.controller import EndpointController
from sabio.endpoints.deployment import Deployer
from sabio.endpoints.service import EndpointService
from sabio.environments.builder import EnvironmentBuilder
from sabio.jobs.execution import JobExecutor
from sabio.models.service import ModelService
from sabio.notifications import publishing
from sabio.notifications.publishing import Notifications
from sabio.processing.controller import ProcessingController
from sabio.processing.runner import ProcessingRunner
from sabio.processing.service import ProcessingService
from sabio.reconcile import StoreReads
from sabio.resources import Catalog
from sabio.serving.capture import CaptureWriter
from sabio.serving.model_data import ModelDataCache
from sabio.serving.router import Router
from sabio.store import database
from sabio.store.repository import Repository
from sabio.tagging.service import TagService
from sabio.telemetry.endpoint_metrics import EndpointMetrics
from sabio.telemetry.logs import LogStore, store_root
from sabio.training.controller import TrainingController
from sabio.training.runner import TrainingRunner
from sabio.training.service import TrainingService
from sabio.transform.controller import TransformController
from sabio.transform.service import TransformService

log = logging.getLogger("sabio")

# What user code inherits from the server's environment; nothing else (no credentials).
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE")


@dataclass
class Platform:
    settings: Settings
    repository: Repository
    artifacts: ArtifactRegistry
    router: Router
    controller: EndpointController
    training: TrainingController
    processing: ProcessingController
    transform: TransformController
    logs: LogStore
    capture: CaptureWriter
    operations: dict[str, Operation]
    # Application Auto Scaling: its operations and the autoscaler that acts on them.
    scaling: ScalingService
    scaler: Scaler
    alarms: AlarmService
    dispatcher: Dispatcher
    asynchronous: AsyncInferenceService
    backlog: BacklogMetrics
    # SNS topics and HTTP(S) delivery; also the `Publisher` asynchronous inference notifies.
    notifications: Notifications
    # Aborts multipart uploads abandoned in the artifact store.
    uploads: UploadSweeper

    async def start(self) -> None:
        await self.notifications.start()
        await self.capture.start()
        await self.controller.start()
        await self.scaler.start()
        await self.dispatcher.start()
        await self.training.start()
        await self.processing.start()
        await self.transform.start()
        await self.uploads.start()

    async def stop(self) -> None:
        await self.uploads.stop()
        await self.transform.stop()
        await self.processing.stop()
        await self.training.stop()
        await self.dispatcher.stop()
        await self.scaler.stop()
        await self.controller.stop()
        await self.capture.stop()
        await self.notifications.stop()
        self.repository.engine.dispose()


def build_platform(settings: Settings, environ: Mapping[str, str]) -> Platform:
    settings.home.mkdir(parents=True, exist_ok=True)
    repository = Repository(database.create(settings.resolved_database_url))
    arns = ArnFactory(settings.region, settings.account_id)
    catalog = Catalog(repository, arns)
    artifacts = registry.from_settings(settings)
    capture = CaptureWriter(artifacts, settings.capture_flush_seconds)
    notifications = publishing.from_settings(repository, settings)
    router = Router(
        settings.account_id, settings.invocation_timeout_seconds, capture, EndpointMetrics()
    )
    environments = EnvironmentBuilder.from_pip_environment(settings.environments_dir, environ)
    backend = LocalBackend()
    base_env = {k: environ[k] for k in _INHERITED if k in environ}
    logs = LogStore(
        store_root(settings.home), region=settings.region, account_id=settings.account_id
    )
    deployer = Deployer(
        home=settings.home,
        logs_dir=settings.logs_dir,
        models=ModelDataCache(settings.models_dir, artifacts),
        environments=environments,
        backend=backend,
        base_env=base_env,
        startup_timeout=settings.worker_startup_timeout_seconds,
        stop_grace=settings.worker_stop_grace_seconds,
    )
    controller = EndpointController(
        repository,
        deployer,
        router,
        arns,
        interval=settings.reconcile_interval_seconds,
        health_check_interval=settings.health_check_interval_seconds,
        serverless_idle_seconds=settings.serverless_idle_seconds,
        serverless_max_workers=settings.serverless_max_workers,
        prewarm=settings.prewarm,
        prewarm_environments=settings.prewarm_environments,
        multi_model_max_loaded=settings.mme_max_loaded,
    )
    runner = TrainingRunner(
        home=settings.home,
        artifacts=artifacts,
        environments=environments,
        base_env=base_env,
        region=settings.region,
    )
    executor = JobExecutor(backend, logs, settings.job_stop_grace_seconds)
    training = TrainingController(
        repository, runner, executor, interval=settings.reconcile_interval_seconds
    )
    processing = ProcessingController(
        repository,
        ProcessingRunner(
            home=settings.home,
            artifacts=artifacts,
            environments=environments,
            base_env=base_env,
            region=settings.region,
        ),
        executor,
        interval=settings.reconcile_interval_seconds,
    )
    transform = TransformController(
        repository,
        executor,
        Deployer(
            home=settings.home,
            logs_dir=settings.logs_dir / "transform-jobs",
            models=deployer.models,
            environments=environments,
            backend=backend,
            base_env=base_env,
            startup_timeout=settings.worker_startup_timeout_seconds,
            stop_grace=settings.worker_stop_grace_seconds,
        ),
        artifacts,
        logs,
        settings.home / "jobs" / "transform",
        interval=settings.reconcile_interval_seconds,
    )
    queue = SqlInvocationQueue(repository.engine)
    async_endpoints = AsyncEndpoints(repository)
    backlog = BacklogMetrics()
    router.metrics.endpoint_series.append(backlog)
    variant_metrics = AsyncVariantMetrics(router.metrics.period, router.metrics.retention)
    router.metrics.variant_series.append(variant_metrics)
    dispatcher = Dispatcher(
        queue,
        async_endpoints,
        router,
        artifacts,
        notifications,
        region=settings.region,
        lease_seconds=settings.async_lease_seconds,
        interval=settings.async_poll_interval_seconds,
        backlog=backlog,
        variant_metrics=variant_metrics,
    )
    controller.listeners.append(dispatcher.endpoints_changed)
    router.metrics.counters.append(PollCounter(dispatcher))
    asynchronous = AsyncInferenceService(
        queue, async_endpoints, artifacts, settings.account_id, dispatcher.notify
    )
    endpoint_service = EndpointService(
        catalog, controller.notify, settings.max_instances_per_endpoint
    )
    scaling_records = ScalingRecords(repository, ScalingArns(settings.region, settings.account_id))
    scaler = Scaler(
        scaling_records,
        endpoint_service,
        [RouterMetricSource(router.metrics), backlog],
        interval=settings.autoscaling_interval_seconds,
        period=settings.autoscaling_metric_period_seconds,
        scale_out_datapoints=settings.autoscaling_scale_out_datapoints,
        scale_in_datapoints=settings.autoscaling_scale_in_datapoints,
    )
    router.metrics.counters.append(
        StoreReads([controller, training, processing, transform, scaler])
    )
    operations: dict[str, Any] = {}
    for service in (
        ModelService(catalog),
        EndpointConfigService(catalog, settings.max_instances_per_endpoint),
        endpoint_service,
        TrainingService(catalog, training.notify, max_instances=settings.max_job_instances),
        ProcessingService(catalog, processing.notify, max_instances=settings.max_job_instances),
        TransformService(catalog, transform.notify, max_instances=settings.max_job_instances),
        TagService(catalog),
    ):
        operations.update(service.operations())
    return Platform(
        settings=settings,
        repository=repository,
        artifacts=artifacts,
        router=router,
        controller=controller,
        training=training,
        processing=processing,
        transform=transform,
        logs=logs,
        capture=capture,
        operations=operations,
        dispatcher=dispatcher,
        asynchronous=asynchronous,
        backlog=backlog,
        notifications=notifications,
        scaling=ScalingService(scaling_records, scaler.notify),
        alarms=AlarmService(repository, scaling_records.arns, scaler.notify),
        scaler=scaler,
        uploads=UploadSweeper(
            lambda: artifacts.for_scheme("s3"),
            settings.s3_multipart_max_age_seconds,
            settings.s3_multipart_sweep_interval_seconds,
        ),
    )


def build_app(settings: Settings, environ: Mapping[str, str]) -> tuple[ASGIApp, Platform]:
    platform = build_platform(settings, environ)
    app = create_asgi(
        ControlPlane(platform.operations, settings.max_request_bytes),
        Runtime(
            platform.router,
            settings.max_invocation_bytes,
            AsyncRuntime(
                platform.asynchronous, settings.async_max_inline_bytes, settings.account_id
            ),
        ),
        LogsApi(platform.logs, settings.max_request_bytes),
        platform.start,
        platform.stop,
        s3=S3Gateway(
            lambda: platform.artifacts.for_scheme("s3"),
            settings.region,
            external=settings.s3_endpoint_url,
            virtual_hosts=settings.s3_virtual_host_bases,
        ),
        cloudwatch=CloudWatchApi(
            platform.router.metrics,
            settings.max_request_bytes,
            settings.account_id,
            alarms=platform.alarms.operations(),
        ),
        sns=SnsApi(platform.notifications, settings.max_request_bytes),
        sts=StsApi(settings.account_id, settings.max_request_bytes),
        autoscaling=Json11Service(
            "application-autoscaling",
            "AnyScaleFrontendService.",
            platform.scaling.operations(),
            settings.max_request_bytes,
        ),
    )
    return app, platform
