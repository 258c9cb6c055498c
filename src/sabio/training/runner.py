"""Running one training job: prepare every instance's `/opt/ml`, run the instances, follow their
logs and metrics, enforce the runtime limit and stop requests, and upload the results."""

from __future__ import annotations

import logging
import shlex
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from sabio import instance_types
from sabio.artifacts.markers import without_folder_markers
from sabio.artifacts.uri import parse
from sabio.compute.sandbox import bubblewrap_available
from sabio.environments import images
from sabio.errors import SabioError
from sabio.jobs import channels, execution, toolkit
from sabio.jobs.execution import Instance, Outcome, Plan
from sabio.jobs.runner import JobFailure, JobRunner
from sabio.jobs.workspace import CONTAINER_ROOT, Workspace, job_root
from sabio.store.entities import Resource

log = logging.getLogger("sabio.training")

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
Progress = Callable[[str, str], None]
__all__ = ["Instance", "JobFailure", "Outcome", "Plan", "TrainingRunner"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TrainingRunner(JobRunner):
    # Preparation (blocking; run in a thread)

    def prepare(self, job: Resource, progress: Progress) -> Plan:
        spec = job.spec
        algorithm = spec["AlgorithmSpecification"]
        image = images.resolve(algorithm["TrainingImage"])
        resources = spec["ResourceConfig"]
        instance_type = resources["InstanceType"]
        described = instance_types.lookup(instance_type)
        if described is None:
            raise JobFailure(f"Unknown instance type {instance_type}.")
        count = int(resources.get("InstanceCount") or 1)
        hosts = execution.free_hosts(count)
        sandboxed = bubblewrap_available()
        root = job_root(self.home, "training", job.name)
        workspaces = {}
        for host in hosts:
            workspace = Workspace(root / host)
            for transient in (workspace.model, workspace.output, workspace.data, workspace.code):
                shutil.rmtree(transient, ignore_errors=True)
            workspaces[host] = workspace.create()

        progress("Downloading", "Downloading input data")
        channel_config = self._download_channels(spec, hosts, workspaces, root / ".cache")
        self._download_checkpoints(spec, workspaces)
        raw_hyperparameters = {
            str(k): str(v) for k, v in (spec.get("HyperParameters") or {}).items()
        }
        _, framework = toolkit.split_hyperparameters(raw_hyperparameters)
        user_env = {str(k): str(v) for k, v in (spec.get("Environment") or {}).items()}
        program = framework.get("sagemaker_program") or user_env.get("SAGEMAKER_PROGRAM")
        submit = framework.get("sagemaker_submit_directory") or user_env.get(
            "SAGEMAKER_SUBMIT_DIRECTORY"
        )
        if program and submit:
            self._fetch_source(str(submit), [w.code for w in workspaces.values()])

        requirements = workspaces[hosts[0]].code / "requirements.txt"
        python = self.environment(image.requirements, requirements if program else None)
        master_port = _free_port()
        instances = []
        epoch = int(time.time())
        for host in hosts:
            workspace = workspaces[host]
            opt_ml = CONTAINER_ROOT if sandboxed else str(workspace.root)
            workspace.write_json("hyperparameters.json", raw_hyperparameters)
            workspace.write_json("inputdataconfig.json", channel_config)
            workspace.write_json(
                "resourceconfig.json", toolkit.resource_config(host, hosts, instance_type)
            )
            module_dir = f"{opt_ml}/code" if program else None
            env = {
                **self.base_env,
                "PYTHONUNBUFFERED": "1",
                **toolkit.training_env(
                    opt_ml=opt_ml,
                    job_name=job.name,
                    current_host=host,
                    hosts=hosts,
                    instance_type=instance_type,
                    cpus=described.cpus,
                    gpus=described.gpus,
                    channels=channel_config,
                    raw_hyperparameters=raw_hyperparameters,
                    entry_point=str(program) if program else None,
                    module_dir=module_dir,
                    master_port=master_port,
                    region=self.region,
                ),
                "TRAINING_JOB_ARN": job.arn,
                "SABIO_OPT_ML": opt_ml,
                **user_env,
            }
            if module_dir:
                env["PYTHONPATH"] = module_dir
            env["PATH"] = execution.environment_path(python, env)
            argv, cwd = self._entry(
                algorithm, image, program, python, raw_hyperparameters, opt_ml, workspace
            )
            instances.append(
                Instance(host, workspace, opt_ml, argv, env, cwd, f"{job.name}/{host}-{epoch}")
            )
        return Plan(
            job=job.name,
            log_group=LOG_GROUP,
            instances=instances,
            cpus=described.cpus,
            memory_bytes=described.memory_bytes,
            sandboxed=sandboxed,
            network=not spec.get("EnableNetworkIsolation", False),
            environment=python.parent.parent,
            metric_definitions=list(algorithm.get("MetricDefinitions") or [])
            + _algorithm_metrics(image.algorithm, program),
        )

    def _download_channels(
        self, spec: dict[str, Any], hosts: list[str], workspaces: dict[str, Workspace], cache: Path
    ) -> dict[str, dict[str, Any]]:
        mode = spec["AlgorithmSpecification"].get("TrainingInputMode", "File")
        config: dict[str, dict[str, Any]] = {}
        for channel in spec.get("InputDataConfig") or []:
            name = channel["ChannelName"]
            source = channel["DataSource"]["S3DataSource"]
            distribution = source.get("S3DataDistributionType", "FullyReplicated")
            entry: dict[str, Any] = {
                "TrainingInputMode": "File" if channel.get("InputMode", mode) != "Pipe" else "Pipe",
                "S3DistributionType": distribution,
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            if channel.get("ContentType"):
                entry["ContentType"] = channel["ContentType"]
            config[name] = entry
            try:
                store, objects = channels.resolve_objects(self.artifacts, name, source)
                for index, host in enumerate(hosts):
                    chosen = channels.shard(objects, distribution, index, len(hosts))
                    channels.materialize(store, chosen, cache, workspaces[host].data / name)
            except channels.ChannelError as exc:
                raise JobFailure(str(exc)) from None
            except SabioError as exc:
                raise JobFailure(f"Channel {name}: {exc.message}") from None
        return config

    def _download_checkpoints(self, spec: dict[str, Any], workspaces: dict[str, Workspace]) -> None:
        checkpoint = spec.get("CheckpointConfig")
        if not checkpoint:
            return
        store, prefix = self.artifacts.resolve(checkpoint["S3Uri"])
        base = prefix.key if not prefix.key or prefix.key.endswith("/") else prefix.key + "/"
        for info in without_folder_markers(store.list(prefix)):
            relative = info.uri.key[len(base) :] if info.uri.key.startswith(base) else ""
            if not relative:
                continue
            for workspace in workspaces.values():
                store.download_file(info.uri, workspace.checkpoints / relative)

    def _fetch_source(self, location: str, targets: list[Path]) -> None:
        """`sagemaker_submit_directory`: an S3 `sourcedir.tar.gz` unpacked into `/opt/ml/code`."""
        if "://" not in location:
            raise JobFailure(
                f"sagemaker_submit_directory '{location}' must be an s3:// URI of a "
                "sourcedir.tar.gz."
            )
        try:
            store, uri = self.artifacts.resolve(location)
            with tempfile.TemporaryDirectory() as scratch:
                archive = Path(scratch) / "sourcedir.tar.gz"
                try:
                    store.download_file(uri, archive)
                except FileNotFoundError:
                    raise JobFailure(f"The source directory {location} does not exist.") from None
                for target in targets:
                    with tarfile.open(archive, "r:*") as tar:
                        tar.extractall(target, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise JobFailure(
                f"The source directory {location} could not be unpacked: {exc}"
            ) from None
        except SabioError as exc:
            raise JobFailure(exc.message) from None

    def _entry(
        self,
        algorithm: dict[str, Any],
        image: images.ImageSpec,
        program: Any,
        python: Path,
        hyperparameters: dict[str, str],
        opt_ml: str,
        workspace: Workspace,
    ) -> tuple[list[str], Path]:
        """The command an instance runs, as a SageMaker container of that image would."""
        entrypoint = list(algorithm.get("ContainerEntrypoint") or [])
        arguments = list(algorithm.get("ContainerArguments") or [])
        if entrypoint:
            if opt_ml != CONTAINER_ROOT:
                entrypoint = [a.replace(CONTAINER_ROOT, opt_ml) for a in entrypoint]
                arguments = [a.replace(CONTAINER_ROOT, opt_ml) for a in arguments]
            if entrypoint[0] in ("python", "python3"):
                entrypoint[0] = str(python)
            return entrypoint + arguments, workspace.root
        if program:
            script = workspace.code / str(program)
            if not script.is_file():
                raise JobFailure(
                    f"The entry point {program} does not exist in the source directory "
                    f"(sagemaker_submit_directory)."
                )
            user, _ = toolkit.split_hyperparameters(hyperparameters)
            target = f"{opt_ml}/code/{program}"
            if str(program).endswith(".py"):
                return [str(python), target, *toolkit.to_cmd_args(user)], workspace.code
            command = shlex.join([target, *toolkit.to_cmd_args(user)])
            return ["/bin/sh", "-c", command], workspace.code
        if image.algorithm:
            module = f"sabio.algorithms.{image.algorithm.replace('-', '_')}"
            return [str(python), "-m", module, "train"], workspace.root
        raise JobFailure(
            f"The image {algorithm['TrainingImage']} needs an entry point: give sagemaker_program "
            "and sagemaker_submit_directory hyperparameters, or ContainerEntrypoint."
        )

    # Results (blocking; run in a thread)

    def upload(self, job: Resource, plan: Plan) -> str:
        """Pack and store the model and output data; returns the model's URI."""
        output = job.spec["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        first = plan.instances[0].workspace
        store, model_uri = self.artifacts.resolve(f"{output}/{job.name}/output/model.tar.gz")
        with _tarball(first.model) as model:
            store.write(model_uri, model)
        if any(first.output_data.iterdir()):
            with _tarball(first.output_data) as data:
                store.write(parse(f"{output}/{job.name}/output/output.tar.gz"), data)
        self.sync_checkpoints(job, plan)
        return str(model_uri)

    def sync_checkpoints(self, job: Resource, plan: Plan) -> None:
        checkpoint = job.spec.get("CheckpointConfig")
        if not checkpoint:
            return
        store, prefix = self.artifacts.resolve(checkpoint["S3Uri"])
        for instance in plan.instances:
            root = instance.workspace.checkpoints
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                relative = path.relative_to(root).as_posix()
                target = prefix.child(relative)
                info = store.stat(target)
                stat = path.stat()
                if info is None or info.size != stat.st_size or info.modified < stat.st_mtime:
                    store.upload_file(path, target)

    def failure_reason(self, plan: Plan, outcome: Outcome) -> str:
        ordered = sorted(plan.instances, key=lambda i: i.host != outcome.first_failure)
        for instance in ordered:
            code = outcome.exit_codes.get(instance.host, 0)
            if code == 0:
                continue
            process = instance.process
            if process is not None and process.oom_killed():
                gib = plan.memory_bytes / 1024**3
                return (
                    f"OutOfMemoryError: the training process on {instance.host} ran out of memory "
                    f"(limit {gib:g} GiB for the instance type). Choose a larger instance type."
                )
            written = instance.workspace.read_failure()
            if written:
                return written
            tail = execution.tail(instance.log_file)
            if "MemoryError" in tail:
                gib = plan.memory_bytes / 1024**3
                return (
                    f"OutOfMemoryError: the training process on {instance.host} ran out of memory "
                    f"(limit {gib:g} GiB for the instance type). Last output: {tail}"
                )[:1024]
            return (
                f"AlgorithmError: the training process on {instance.host} exited with status "
                f"{code}. Last output: {tail}"
            )[:1024]
        return "AlgorithmError: the training job failed."


def _tarball(directory: Path) -> BinaryIO:
    """A gzip tar of the directory's contents, spooled to a temporary file."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    with tarfile.open(fileobj=spool, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    spool.seek(0)
    return spool


def _algorithm_metrics(algorithm: str | None, program: Any) -> list[dict[str, str]]:
    """A built-in algorithm's metrics are extracted without the user defining them."""
    if not algorithm or program:
        return []
    module_name = f"sabio.algorithms.{algorithm.replace('-', '_')}"
    try:
        module = __import__(module_name, fromlist=["METRIC_DEFINITIONS"])
    except ImportError:
        return []
    return list(getattr(module, "METRIC_DEFINITIONS", []))
