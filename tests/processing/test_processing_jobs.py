"""Processing jobs against a live server: inputs at their LocalPath, the entry point really
runs, outputs uploaded, ExitMessage and failures reported, stop honoured."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sabio.compute.sandbox import bubblewrap_available
from support.deploy import unique
from support.server import SabioServer
from support.training import ROLE, SKLEARN_TRAINING_IMAGE, put_bytes, read_object

# The scripts use SageMaker's hard-coded /opt/ml paths, which need the sandbox's bind mount.
pytestmark = pytest.mark.skipif(
    not bubblewrap_available(), reason="bubblewrap is not installed (scripts/bootstrap installs it)"
)

PREPROCESS = """\
import json, os, sys
source = "/opt/ml/processing/input/raw"
rows = []
for name in sorted(os.listdir(source)):
    with open(os.path.join(source, name)) as f:
        rows += [line.strip() for line in f if line.strip()]
config = json.load(open("/opt/ml/config/processingjobconfig.json"))
resources = json.load(open("/opt/ml/config/resourceconfig.json"))
os.makedirs("/opt/ml/processing/output/clean", exist_ok=True)
with open("/opt/ml/processing/output/clean/rows.txt", "w") as f:
    f.write("\\n".join(r.upper() for r in rows) + "\\n")
with open("/opt/ml/processing/output/clean/meta.json", "w") as f:
    meta = {"argv": sys.argv[1:], "job": config["ProcessingJobName"]}
    meta.update(host=resources["current_host"], env=os.environ.get("STAGE"))
    json.dump(meta, f)
print(f"processed {len(rows)} rows", flush=True)
"""


def create(sm: Any, name: str, script_uri: str, **extra: Any) -> None:
    arguments = extra.pop("arguments", ["--mode", "fast"])
    inputs = extra.pop("inputs", [])
    sm.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={
            "ImageUri": SKLEARN_TRAINING_IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"],
            "ContainerArguments": arguments,
        },
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
        ProcessingInputs=[
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": script_uri,
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            *inputs,
        ],
        **extra,
    )


def wait(sm: Any, name: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sm.describe_processing_job(ProcessingJobName=name)
        if described["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described
        assert time.monotonic() < deadline, described
        time.sleep(0.1)


def test_processing_job_reads_inputs_and_uploads_outputs(server: SabioServer, sm: Any):
    name = unique("prep")
    code = put_bytes(server, f"s3://processing/{name}/code/job.py", PREPROCESS.encode())
    put_bytes(server, f"s3://processing/{name}/raw/a.csv", b"alpha\nbeta\n")
    put_bytes(server, f"s3://processing/{name}/raw/b.csv", b"gamma\n")
    create(
        sm,
        name,
        code,
        inputs=[
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": f"s3://processing/{name}/raw",
                    "LocalPath": "/opt/ml/processing/input/raw",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "clean",
                    "S3Output": {
                        "S3Uri": f"s3://processing/{name}/clean",
                        "LocalPath": "/opt/ml/processing/output/clean",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        Environment={"STAGE": "test"},
    )
    sm.get_waiter("processing_job_completed_or_stopped").wait(
        ProcessingJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    described = sm.describe_processing_job(ProcessingJobName=name)
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["ProcessingEndTime"] >= described["ProcessingStartTime"]
    assert read_object(server, f"s3://processing/{name}/clean/rows.txt") == b"ALPHA\nBETA\nGAMMA\n"
    meta = json.loads(read_object(server, f"s3://processing/{name}/clean/meta.json"))
    assert meta == {"argv": ["--mode", "fast"], "job": name, "host": "algo-1", "env": "test"}
    listed = sm.list_processing_jobs(NameContains=name)["ProcessingJobSummaries"]
    assert [(j["ProcessingJobName"], j["ProcessingJobStatus"]) for j in listed] == [
        (name, "Completed")
    ]


def test_exit_message_failure_and_stop(server: SabioServer, sm: Any):
    name = unique("msg")
    script = (
        "import sys\n"
        "open('/opt/ml/output/message', 'w').write('schema check failed: column age missing')\n"
        "sys.exit(4)\n"
    )
    create(sm, name, put_bytes(server, f"s3://processing/{name}/code/job.py", script.encode()))
    described = wait(sm, name)
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["ExitMessage"] == "schema check failed: column age missing"
    assert "exited with status 4" in described["FailureReason"]

    name = unique("long")
    script = "import time\nprint('working', flush=True)\ntime.sleep(600)\n"
    create(sm, name, put_bytes(server, f"s3://processing/{name}/code/job.py", script.encode()))
    deadline = time.monotonic() + 60
    while not (server.home / "jobs" / "processing" / name / "algo-1.log").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sm.stop_processing_job(ProcessingJobName=name)
    assert wait(sm, name)["ProcessingJobStatus"] == "Stopped"


def test_processing_validation(server: SabioServer, sm: Any):
    code = put_bytes(server, "s3://processing/v/code/job.py", b"print(1)\n")
    with pytest.raises(ClientError) as raised:
        create(
            sm,
            unique("bad"),
            code,
            inputs=[
                {
                    "InputName": "x",
                    "S3Input": {
                        "S3Uri": "s3://processing/v/",
                        "LocalPath": "/etc/passwd",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                }
            ],
        )
    assert "must be a path under /opt/ml/processing/" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        sm.describe_processing_job(ProcessingJobName="never-ran")
    assert missing.value.response["Error"]["Message"].startswith("Could not find processing job")


def test_continuous_outputs_are_uploaded_while_the_job_runs(server: SabioServer, sm: Any):
    from sabio import service_model
    from sabio.api.shapes import missing_required_output

    name = unique("cont")
    script = (
        "import os, time\n"
        "os.makedirs('/opt/ml/processing/output/live', exist_ok=True)\n"
        "open('/opt/ml/processing/output/live/progress.txt', 'w').write('half')\n"
        "time.sleep(8)\n"
    )
    create(
        sm,
        name,
        put_bytes(server, f"s3://processing/{name}/code/job.py", script.encode()),
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "live",
                    "S3Output": {
                        "S3Uri": f"s3://processing/{name}/live",
                        "LocalPath": "/opt/ml/processing/output/live",
                        "S3UploadMode": "Continuous",
                    },
                }
            ]
        },
    )
    deadline = time.monotonic() + 30
    while True:
        described = sm.describe_processing_job(ProcessingJobName=name)
        try:
            uploaded = read_object(server, f"s3://processing/{name}/live/progress.txt")
            break
        except FileNotFoundError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert uploaded == b"half"
    assert described["ProcessingJobStatus"] == "InProgress"
    final = wait(sm, name)
    assert final["ProcessingJobStatus"] == "Completed"
    model = service_model.operation("DescribeProcessingJob")
    assert model is not None
    raw = {k: v for k, v in final.items() if k != "ResponseMetadata"}
    assert missing_required_output(model, raw) == []
