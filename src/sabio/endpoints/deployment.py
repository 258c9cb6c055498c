"""Turning an endpoint's recorded configuration into running model workers.

`plan` does the blocking preparation (model data, code, environment) and is run in a thread;
`start_instance` launches one worker and waits until it answers `GET /ping`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from sabio import instance_types
from sabio.compute.local import LocalBackend, LocalProcess, WorkUnit
from sabio.environments import images
from sabio.environments.builder import EnvironmentBuilder, EnvironmentBuildError, EnvironmentSpec
from sabio.errors import SabioError
from sabio.models.service import containers_of
from sabio.serving.forked_workers import ForkedProcess
from sabio.serving.model_data import ModelDataCache, ModelDataError
from sabio.serving.router import Instance
from sabio.store.entities import Resource

_SERVERLESS_CPUS = 1

WorkerProcess = LocalProcess | ForkedProcess
"""A worker started afresh by the compute backend, or forked by a pre-warmed parent."""
Launch = Callable[[WorkUnit], Awaitable[WorkerProcess]]


class DeploymentError(Exception):
    """Why an endpoint could not be brought up, in words a user can act on."""


@dataclass(frozen=True)
class VariantPlan:
    name: str
    weight: float
    instance_count: int
    instance_type: str
    cpus: int
    memory_bytes: int
    model_dir: Path
    python: Path
    env: Mapping[str, str]
    image: str
    startup_timeout: float
    # SAGEMAKER_MODEL_SERVER_TIMEOUT(_SECONDS) from the container's environment, if set.
    invocation_timeout: float | None = None
    # The variant's ServerlessConfig; its workers are then started on demand
    # (`sabio.endpoints.serverless`), and `instance_count` is 0.
    serverless: Mapping[str, int] | None = None
    # A shadow variant (ShadowProductionVariants): it gets copies of production traffic.
    shadow: bool = False
    # The S3 prefix of a multi-model variant (`Mode: MultiModel`): its workers are started one
    # per target model on demand (`sabio.endpoints.multi_model`), and `instance_count` is 0.
    multi_model: str | None = None


@dataclass
class RunningInstance:
    variant: str
    index: int
    process: WorkerProcess
    endpoint: Instance
    started_at: float = field(default_factory=time.time)
    last_ping: float = field(default_factory=time.monotonic)
    ping_failures: int = 0


def log_path(logs_dir: Path, endpoint: str, variant: str, index: int) -> Path:
    return logs_dir / "endpoints" / endpoint / f"{variant}-{index + 1}.log"


class Deployer:
    def __init__(
        self,
        *,
        home: Path,
        logs_dir: Path,
        models: ModelDataCache,
        environments: EnvironmentBuilder,
        backend: LocalBackend,
        base_env: Mapping[str, str],
        startup_timeout: float,
        stop_grace: float,
        gpus_available: int = 0,
    ) -> None:
        self.logs_dir = logs_dir
        self.models = models
        self.environments = environments
        self.backend = backend
        self.base_env = dict(base_env)
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.gpus_available = gpus_available
        digest = hashlib.sha256(str(home).encode()).hexdigest()[:10]
        # Unix socket paths are limited to about 100 bytes, so they live in a short directory.
        self.socket_dir = Path(tempfile.gettempdir()) / f"sabio-{digest}"

    # Preparation (blocking)

    def plan(self, endpoint: Resource) -> list[VariantPlan]:
        config: dict[str, Any] = endpoint.spec["Config"]
        models: dict[str, Any] = endpoint.spec["Models"]
        plans = [
            self._plan_variant(v, models[v["ModelName"]]) for v in config["ProductionVariants"]
        ]
        for shadow in config.get("ShadowProductionVariants") or []:
            plan = self._plan_variant(shadow, models[shadow["ModelName"]])
            plans.append(dataclasses.replace(plan, shadow=True))
        return plans

    def _plan_variant(self, variant: dict[str, Any], model: dict[str, Any]) -> VariantPlan:
        name = variant["VariantName"]
        containers = containers_of(model)
        if len(containers) != 1:
            raise DeploymentError(
                f"Variant {name}: models with {len(containers)} containers (inference pipelines) "
                "are not supported yet; use one container."
            )
        container = containers[0]
        image = images.resolve(container["Image"])
        serverless = variant.get("ServerlessConfig")
        if serverless:
            instance_type, count = "serverless", 0
            cpus, memory = _SERVERLESS_CPUS, int(serverless["MemorySizeInMB"]) * 1024**2
        else:
            instance_type, count = variant["InstanceType"], int(variant["InitialInstanceCount"])
            described = instance_types.lookup(instance_type)
            if described is None:
                raise DeploymentError(f"Variant {name}: unknown instance type {instance_type}.")
            if described.gpus > self.gpus_available:
                raise DeploymentError(
                    f"Variant {name}: instance type {instance_type} needs {described.gpus} GPU(s) "
                    f"or other accelerators and this machine has {self.gpus_available}. "
                    "Choose a CPU instance type."
                )
            cpus, memory = described.cpus, described.memory_bytes
        if image.gpu and not self.gpus_available:
            raise DeploymentError(
                f"Variant {name}: image {container['Image']} is a GPU image and this machine has "
                "no GPU. Use the CPU image."
            )
        multi_model = container["ModelDataUrl"] if container.get("Mode") == "MultiModel" else None
        if multi_model is not None:
            count, model_dir = 0, self.models.empty_dir()
        else:
            model_dir = self._model_dir(container)
        env = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
        code_dir = self._code_dir(env, model_dir)
        python = self._environment(image.requirements, code_dir, name)
        timeout = float(
            variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or self.startup_timeout
        )
        server_timeout = env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS") or env.get(
            "SAGEMAKER_MODEL_SERVER_TIMEOUT"
        )
        return VariantPlan(
            invocation_timeout=_seconds(server_timeout),
            name=name,
            weight=float(variant.get("InitialVariantWeight", 1.0)),
            instance_count=count,
            instance_type=instance_type,
            cpus=cpus,
            memory_bytes=memory,
            model_dir=model_dir,
            python=python,
            env=env,
            image=container["Image"],
            startup_timeout=timeout,
            serverless=serverless or None,
            multi_model=multi_model,
        )

    def _model_dir(self, container: dict[str, Any]) -> Path:
        try:
            if container.get("ModelDataUrl"):
                return self.models.archive(container["ModelDataUrl"])
            source = (container.get("ModelDataSource") or {}).get("S3DataSource")
            if source:
                if source.get("CompressionType", "None") == "Gzip":
                    return self.models.archive(source["S3Uri"])
                return self.models.prefix(source["S3Uri"])
        except ModelDataError as exc:
            raise DeploymentError(str(exc)) from None
        except SabioError as exc:
            raise DeploymentError(exc.message) from None
        return self.models.empty_dir()

    def _code_dir(self, env: dict[str, str], model_dir: Path) -> Path:
        """The user code directory; an S3 `sourcedir.tar.gz` is fetched and the variable
        rewritten to the local copy, as SageMaker framework containers do."""
        submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if "://" in submit:
            try:
                local = self.models.archive(submit)
            except (ModelDataError, SabioError) as exc:
                message = exc.message if isinstance(exc, SabioError) else str(exc)
                raise DeploymentError(f"SAGEMAKER_SUBMIT_DIRECTORY: {message}") from None
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(local)
            return local
        if submit.startswith("/opt/ml/model"):
            return model_dir / submit[len("/opt/ml/model") :].lstrip("/")
        return model_dir / "code"

    def _environment(self, base: tuple[str, ...], code_dir: Path, variant: str) -> Path:
        requirements = code_dir / "requirements.txt"
        try:
            spec = EnvironmentSpec(requirements=base)
            if requirements.is_file():
                extra = self.environments.spec_from_requirements_file(requirements)
                spec = spec.combined_with(extra)
            return self.environments.ensure(spec).python
        except EnvironmentBuildError as exc:
            raise DeploymentError(
                f"Variant {variant}: building the environment for {requirements.name} failed: "
                f"{exc.message}"
            ) from None

    # Running (event loop)

    async def start_instance(
        self, endpoint: str, plan: VariantPlan, index: int, launch: Launch | None = None
    ) -> RunningInstance:
        """Start one worker (through `launch`, such as a fork from a pre-warmed parent, when
        given) and wait until it answers `GET /ping`."""
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        socket_path = self.socket_dir / f"{uuid.uuid4().hex[:16]}.sock"
        failure_file = self.socket_dir / f"{socket_path.stem}.failure"
        log = log_path(self.logs_dir, endpoint, plan.name, index)
        argv = [
            str(plan.python),
            "-m",
            "sabio.serving.worker",
            "--model-dir",
            str(plan.model_dir),
            "--uds",
            str(socket_path),
            "--failure-file",
            str(failure_file),
        ]
        env = {
            **self.base_env,
            "PYTHONUNBUFFERED": "1",
            "SM_NUM_CPUS": str(plan.cpus),
            "SAGEMAKER_ENDPOINT_NAME": endpoint,
            "SAGEMAKER_VARIANT_NAME": plan.name,
            **plan.env,
        }
        unit = WorkUnit(argv, env, plan.model_dir, log, plan.cpus, plan.memory_bytes)
        process = self.backend.start(unit) if launch is None else await launch(unit)
        instance = Instance(str(socket_path))
        try:
            await self._wait_healthy(process, instance, plan, failure_file, log)
        except BaseException:
            await instance.close()
            await process.stop(self.stop_grace)
            socket_path.unlink(missing_ok=True)
            raise
        finally:
            failure_file.unlink(missing_ok=True)
        return RunningInstance(plan.name, index, process, instance)

    async def _wait_healthy(
        self,
        process: WorkerProcess,
        instance: Instance,
        plan: VariantPlan,
        failure_file: Path,
        log: Path,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + plan.startup_timeout
        probe = aiohttp.ClientTimeout(total=2)
        while loop.time() < deadline:
            if process.returncode is not None:
                reason = _read_reason(failure_file) or _log_tail(log)
                raise DeploymentError(
                    f"The model worker of variant {plan.name} exited with code "
                    f"{process.returncode} while starting: {reason}"
                )
            if Path(instance.socket_path).exists():
                try:
                    async with instance.client().get("http://worker/ping", timeout=probe) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(0.02)
        raise DeploymentError(
            f"The model worker of variant {plan.name} did not answer GET /ping within "
            f"{plan.startup_timeout:.0f} seconds. See {log}."
        )

    async def ping(self, running: RunningInstance, timeout: float = 2.0) -> bool:
        """Whether the worker answers `GET /ping` with 200 in time (SageMaker allows 2 s)."""
        probe = aiohttp.ClientTimeout(total=timeout)
        try:
            async with running.endpoint.client().get("http://worker/ping", timeout=probe) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def stop_instance(self, running: RunningInstance) -> None:
        await running.endpoint.close()
        await running.process.stop(self.stop_grace)
        Path(running.endpoint.socket_path).unlink(missing_ok=True)


def _read_reason(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[:1024]
    except OSError:
        return ""


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return " | ".join(text[-lines:])[:1024] or "no output"


def _seconds(text: str | None) -> float | None:
    """A positive number of seconds from an environment value, else None."""
    try:
        value = float(text) if text else 0.0
    except ValueError:
        return None
    return value if value > 0 else None
