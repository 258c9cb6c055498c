"""Running one processing job: inputs downloaded to their `LocalPath` under
`/opt/ml/processing`, `/opt/ml/config/*.json` written, the container's entry point run on every
instance, and outputs uploaded from their `LocalPath` (at the end, or continuously)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from sabio import instance_types
from sabio.compute.sandbox import bubblewrap_available
from sabio.environments import images
from sabio.environments.builder import EnvironmentBuildError, EnvironmentSpec
from sabio.errors import SabioError
from sabio.jobs import channels, execution, toolkit
from sabio.jobs.execution import Instance, Outcome, Plan
from sabio.jobs.runner import JobFailure, JobRunner
from sabio.jobs.workspace import CONTAINER_ROOT, Workspace, job_root
from sabio.store.entities import Resource

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


def _inside(root: Path, container_path: str) -> Path:
    """The host path of a path under /opt/ml."""
    relative = container_path[len(CONTAINER_ROOT) :].strip("/")
    return root / relative


class ProcessingRunner(JobRunner):
    def prepare(self, job: Resource) -> Plan:
        spec = job.spec
        app = spec["AppSpecification"]
        image = images.resolve(app["ImageUri"])
        cluster = spec["ProcessingResources"]["ClusterConfig"]
        described = instance_types.lookup(cluster["InstanceType"])
        if described is None:
            raise JobFailure(f"Unknown instance type {cluster['InstanceType']}.")
        hosts = execution.free_hosts(int(cluster["InstanceCount"]))
        sandboxed = bubblewrap_available()
        root = job_root(self.home, "processing", job.name)
        try:
            python = self.environments.ensure(
                EnvironmentSpec(requirements=image.requirements)
            ).python
        except EnvironmentBuildError as exc:
            raise JobFailure(f"Building the job's environment failed: {exc.message}") from None
        instances = []
        epoch = int(time.time())
        for index, host in enumerate(hosts):
            workspace = Workspace(root / host)
            shutil.rmtree(workspace.root, ignore_errors=True)
            for sub in ("processing", "config", "output"):
                (workspace.root / sub).mkdir(parents=True, exist_ok=True)
            self._download_inputs(spec, workspace.root, root / ".cache", index, len(hosts))
            for output in (spec.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
                _inside(workspace.root, output["S3Output"]["LocalPath"]).mkdir(
                    parents=True, exist_ok=True
                )
            config = workspace.root / "config"
            _write(
                config / "processingjobconfig.json",
                {**spec, "ProcessingJobArn": job.arn, "ProcessingJobName": job.name},
            )
            _write(
                config / "resourceconfig.json",
                toolkit.resource_config(host, hosts, cluster["InstanceType"]),
            )
            opt_ml = CONTAINER_ROOT if sandboxed else str(workspace.root)
            argv = [*app["ContainerEntrypoint"], *(app.get("ContainerArguments") or [])]
            if not sandboxed:
                argv = [a.replace(CONTAINER_ROOT, opt_ml) for a in argv]
            if argv[0] in ("python", "python3"):
                argv[0] = str(python)
            env = {
                **self.base_env,
                "PYTHONUNBUFFERED": "1",
                "SAGEMAKER_REGION": self.region,
                "PROCESSING_JOB_NAME": job.name,
                "SABIO_OPT_ML": opt_ml,
                **{str(k): str(v) for k, v in (spec.get("Environment") or {}).items()},
            }
            env["PATH"] = execution.environment_path(python, env)
            instances.append(
                Instance(
                    host, workspace, opt_ml, argv, env, workspace.root, f"{job.name}/{host}-{epoch}"
                )
            )
        network = not (spec.get("NetworkConfig") or {}).get("EnableNetworkIsolation", False)
        return Plan(
            job=job.name,
            log_group=LOG_GROUP,
            instances=instances,
            cpus=described.cpus,
            memory_bytes=described.memory_bytes,
            sandboxed=sandboxed,
            network=network,
            environment=python.parent.parent,
        )

    def _download_inputs(
        self, spec: dict[str, Any], root: Path, cache: Path, host_index: int, hosts: int
    ) -> None:
        for item in spec.get("ProcessingInputs") or []:
            source = item["S3Input"]
            name = item["InputName"]
            try:
                store, objects = channels.resolve_objects(self.artifacts, name, source)
                chosen = channels.shard(
                    objects,
                    source.get("S3DataDistributionType", "FullyReplicated"),
                    host_index,
                    hosts,
                )
                channels.materialize(store, chosen, cache, _inside(root, source["LocalPath"]))
            except channels.ChannelError as exc:
                raise JobFailure(str(exc).replace("Channel", "Input", 1)) from None
            except SabioError as exc:
                raise JobFailure(f"Input {name}: {exc.message}") from None

    def upload_outputs(self, job: Resource, plan: Plan, *, continuous_only: bool = False) -> None:
        """Copy each output's files to its S3Uri; unchanged files are not copied again."""
        for output in (job.spec.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            s3 = output["S3Output"]
            if continuous_only and s3.get("S3UploadMode", "EndOfJob") != "Continuous":
                continue
            store, prefix = self.artifacts.resolve(s3["S3Uri"])
            for instance in plan.instances:
                local = _inside(instance.workspace.root, s3["LocalPath"])
                for path in sorted(
                    p for p in local.rglob("*") if p.is_file() and not p.is_symlink()
                ):
                    target = prefix.child(path.relative_to(local).as_posix())
                    info = store.stat(target)
                    stat = path.stat()
                    if info is None or info.size != stat.st_size or info.modified < stat.st_mtime:
                        store.upload_file(path, target)

    @staticmethod
    def exit_message(plan: Plan) -> str:
        for instance in plan.instances:
            try:
                text = (instance.workspace.root / "output" / "message").read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                return text.strip()[:1024]
        return ""

    @staticmethod
    def failure_reason(plan: Plan, outcome: Outcome) -> str:
        ordered = sorted(plan.instances, key=lambda i: i.host != outcome.first_failure)
        for instance in ordered:
            code = outcome.exit_codes.get(instance.host, 0)
            if code == 0:
                continue
            if instance.process is not None and instance.process.oom_killed():
                return (
                    f"OutOfMemoryError: the processing container on {instance.host} ran out of "
                    "memory. Choose a larger instance type."
                )
            return (
                f"AlgorithmError: the processing container on {instance.host} exited with status "
                f"{code}. Last output: {execution.tail(instance.log_file)}"
            )[:1024]
        return "AlgorithmError: the processing job failed."


def _write(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
