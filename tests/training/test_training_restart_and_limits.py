"""Training jobs across a server restart, with the SDK v3 entry point, and out of memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from support.deploy import unique
from support.server import SabioServer
from support.training import (
    channel,
    create_job,
    members,
    put_bytes,
    put_sourcedir,
    read_object,
    sdk_hyperparameters,
    wait_job,
    wait_log,
)

CHECKPOINTING = """\
import os, time
root = os.path.dirname(os.environ["SM_INPUT_DIR"])
checkpoint = os.path.join(root, "checkpoints", "step.txt")
if os.path.exists(checkpoint):
    step = open(checkpoint).read()
    print(f"resumed from step {step}", flush=True)
    open(os.path.join(os.environ["SM_MODEL_DIR"], "resumed.txt"), "w").write(step)
else:
    open(checkpoint, "w").write("1")
    print("sleeping", flush=True)
    time.sleep(600)
"""


def test_a_restart_fails_plain_jobs_and_resumes_checkpointed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path / "home"
    home.mkdir()
    first = SabioServer(home)
    first.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", first.url)
    sm, logs = boto3.client("sagemaker"), boto3.client("logs")
    sourcedir = put_sourcedir(
        first, "s3://training/restart/sourcedir.tar.gz", {"train.py": CHECKPOINTING}
    )
    plain, resumable = unique("plain"), unique("resumable")
    create_job(sm, plain, hyperparameters=sdk_hyperparameters("train.py", sourcedir))
    create_job(
        sm,
        resumable,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        CheckpointConfig={"S3Uri": f"s3://training/checkpoints/{resumable}"},
    )
    wait_log(logs, plain, "sleeping")
    wait_log(logs, resumable, "sleeping")
    assert first.stop() == 0

    second = SabioServer(home)
    second.port, second.url = first.port, first.url
    second.start()
    try:
        failed = wait_job(sm, plain)
        assert failed["TrainingJobStatus"] == "Failed"
        assert "server stopped while the job was running" in failed["FailureReason"]
        resumed = wait_job(sm, resumable)
        assert resumed["TrainingJobStatus"] == "Completed", resumed.get("FailureReason")
        assert "Restarting" in [t["Status"] for t in resumed["SecondaryStatusTransitions"]]
        model = members(read_object(second, resumed["ModelArtifacts"]["S3ModelArtifacts"]))
        assert model["resumed.txt"] == b"1"
    finally:
        second.stop()


V3_TRAIN = """\
import json, os
config = json.load(open("/opt/ml/input/config/resourceconfig.json"))
for key in ("current_host", "current_instance_type", "hosts", "network_interface_name"):
    assert key in config, key
with open("/opt/ml/model/v3.json", "w") as f:
    code = sorted(os.listdir("/opt/ml/input/data/code"))
    json.dump({"host": config["current_host"], "code": code}, f)
"""


def test_sdk_v3_code_channel_and_container_entrypoint(server: SabioServer, sm: Any):
    from sabio.compute.sandbox import bubblewrap_available

    if not bubblewrap_available():
        pytest.skip("the script uses hard-coded /opt/ml paths, which need bubblewrap")
    name = unique("v3")
    put_bytes(server, f"s3://training/{name}/code/train.py", V3_TRAIN.encode())
    create_job(
        sm,
        name,
        channels=[channel("code", f"s3://training/{name}/code")],
        algorithm={
            "ContainerEntrypoint": ["/bin/bash"],
            "ContainerArguments": ["-c", "python /opt/ml/input/data/code/train.py"],
        },
        Environment={"STAGE": "v3"},
    )
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    model = members(read_object(server, described["ModelArtifacts"]["S3ModelArtifacts"]))
    assert model["v3.json"] == b'{"host": "algo-1", "code": ["train.py"]}'


def test_a_job_that_runs_out_of_memory_says_so(server: SabioServer, sm: Any):
    name = unique("oom")
    script = "data = b'x' * (5 << 30)\nprint(len(data))\n"
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": script}
    )
    create_job(
        sm,
        name,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        instance_type="ml.t3.medium",
    )
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Failed"
    assert "ran out of memory" in described["FailureReason"]
