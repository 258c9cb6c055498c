"""The composition root: builds every part of a Sabio server from one `Settings`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sabio.api.app import create_asgi
from sabio.api.cloudwatch import CloudWatchApi
from sabio.api.control_plane import ControlPlane, Operation
from sabio.api.logs import LogsApi
from sabio.api.runtime import ASGIApp, Runtime
from sabio.api.s3.routing import S3Gateway
from sabio.arns import ArnFactory
from sabio.artifacts import registry
from sabio.artifacts.registry import ArtifactRegistry
from sabio.compute.local import LocalBackend
from sabio.config import Settings
from sabio.endpoints.configs import EndpointConfigService
from sabio.endpoints.controller import EndpointController
from sabio.endpoints.deployment import Deployer
from sabio.endpoints.service import EndpointService
from sabio.environments.builder import EnvironmentBuilder
from sabio.jobs.execution import JobExecutor
from sabio.models.service import ModelService
from sabio.processing.controller import ProcessingController
from sabio.processing.runner import ProcessingRunner
from sabio.processing.service import ProcessingService
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

    async def start(self) -> None:
        await self.capture.start()
        await self.controller.start()
        await self.training.start()
        await self.processing.start()
        await self.transform.start()

    async def stop(self) -> None:
        await self.transform.stop()
        await self.processing.stop()
        await self.training.stop()
        await self.controller.stop()
        await self.capture.stop()
        self.repository.engine.dispose()


def build_platform(settings: Settings, environ: Mapping[str, str]) -> Platform:
    settings.home.mkdir(parents=True, exist_ok=True)
    repository = Repository(database.create(settings.resolved_database_url))
    arns = ArnFactory(settings.region, settings.account_id)
    catalog = Catalog(repository, arns)
    artifacts = registry.from_settings(settings)
    capture = CaptureWriter(artifacts, settings.capture_flush_seconds)
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
    operations: dict[str, Any] = {}
    for service in (
        ModelService(catalog),
        EndpointConfigService(catalog, settings.max_instances_per_endpoint),
        EndpointService(catalog, controller.notify, settings.max_instances_per_endpoint),
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
    )


def build_app(settings: Settings, environ: Mapping[str, str]) -> tuple[ASGIApp, Platform]:
    platform = build_platform(settings, environ)
    app = create_asgi(
        ControlPlane(platform.operations, settings.max_request_bytes),
        Runtime(platform.router, settings.max_invocation_bytes),
        LogsApi(platform.logs, settings.max_request_bytes),
        platform.start,
        platform.stop,
        s3=S3Gateway(
            lambda: platform.artifacts.for_scheme("s3"),
            settings.region,
            external=settings.s3_endpoint_url,
        ),
        cloudwatch=CloudWatchApi(
            platform.router.metrics, settings.max_request_bytes, settings.account_id
        ),
    )
    return app, platform
