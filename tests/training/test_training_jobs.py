"""Training jobs against a live server: the user's script really runs under the SageMaker
training contract, and its model is deployed and invoked through the endpoint path."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from support.deploy import deploy, unique
from support.server import SabioServer
from support.training import (
    channel,
    create_job,
    members,
    put_iris_csv,
    put_sourcedir,
    read_object,
    sdk_hyperparameters,
    wait_job,
    wait_log,
    wait_secondary,
)

TRAIN_PY = """\
import argparse, glob, json, os, socket, sys
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("-C", type=float, default=1.0)
parser.add_argument("--max-iter", type=int, default=100)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
args = parser.parse_args()
data = np.loadtxt(sorted(glob.glob(os.path.join(args.train, "*.csv")))[0], delimiter=",")
model = LogisticRegression(C=args.C, max_iter=args.max_iter).fit(data[:, 1:], data[:, 0])
print(f"train_accuracy={model.score(data[:, 1:], data[:, 0]):.4f}", flush=True)
joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
config = os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json")
snapshot = {
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "TRAINING_JOB"))},
    "resourceconfig": json.load(open(config)),
    "hyperparameters": json.load(
        open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json"))
    ),
    "opt_ml_exists": os.path.isdir("/opt/ml/input/data/train"),
}
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "snapshot.json"), "w") as f:
    json.dump(snapshot, f)
"""


@pytest.fixture
def logs(endpoint_url: str) -> Any:
    return boto3.client("logs")


def test_script_mode_job_trains_a_model_that_an_endpoint_serves(
    server: SabioServer, sm: Any, runtime: Any, logs: Any
):
    name = unique("sklearn")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/source/sourcedir.tar.gz", {"train.py": TRAIN_PY}
    )
    data = put_iris_csv(server, f"s3://training/{name}/data")
    started = time.monotonic()
    create_job(
        sm,
        name,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir, C=0.5, **{"max-iter": 300}),
        channels=[channel("train", data)],
        algorithm={
            "MetricDefinitions": [{"Name": "train:accuracy", "Regex": "train_accuracy=([0-9.]+)"}]
        },
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
    )
    described = sm.describe_training_job(TrainingJobName=name)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["SecondaryStatus"] == "Completed"
    statuses = [t["Status"] for t in described["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert described["TrainingTimeInSeconds"] >= 1
    assert described["TrainingStartTime"] <= described["TrainingEndTime"]
    [metric] = described["FinalMetricDataList"]
    assert metric["MetricName"] == "train:accuracy"
    assert metric["Value"] > 0.9
    artifacts = described["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifacts == f"s3://training/output/{name}/output/model.tar.gz"
    assert "model.joblib" in members(read_object(server, artifacts))
    assert time.monotonic() - started < 60

    snapshot = json.loads(
        members(read_object(server, f"s3://training/output/{name}/output/output.tar.gz"))[
            "snapshot.json"
        ]
    )
    assert snapshot["argv"] == ["-C", "0.5", "--max-iter", "300"]
    env = snapshot["env"]
    assert env["SM_HP_C"] == "0.5"
    assert env["SM_HP_MAX-ITER"] == "300"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_CHANNELS"] == '["train"]'
    assert env["SM_NUM_CPUS"] == "2"
    assert env["TRAINING_JOB_NAME"] == name
    assert json.loads(env["SM_TRAINING_ENV"])["hps"] == {"C": 0.5, "max-iter": 300}
    assert snapshot["resourceconfig"]["current_instance_type"] == "ml.m5.large"
    assert snapshot["resourceconfig"]["network_interface_name"]
    assert snapshot["hyperparameters"]["sagemaker_program"] == '"train.py"'

    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    assert [s["logStreamName"].split("/")[1].rsplit("-", 1)[0] for s in streams] == ["algo-1"]
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )["events"]
    assert any("train_accuracy=" in e["message"] for e in events)

    endpoint = deploy(sm, artifacts)
    body = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body="[[5.1, 3.5, 1.4, 0.2]]"
    )["Body"].read()
    assert json.loads(body) == [0.0]
    sm.delete_endpoint(EndpointName=endpoint)

    listed = sm.list_training_jobs(NameContains=name)["TrainingJobSummaries"]
    assert [(j["TrainingJobName"], j["TrainingJobStatus"]) for j in listed] == [(name, "Completed")]


def test_a_failing_script_fails_the_job_with_its_reason(server: SabioServer, sm: Any):
    name = unique("fails")
    script = (
        "import os\n"
        "with open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w') as f:\n"
        "    f.write('ValueError: the labels column is empty')\n"
        "raise SystemExit(3)\n"
    )
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": script}
    )
    create_job(sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir))
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == "ValueError: the labels column is empty"

    name = unique("raises")
    sourcedir = put_sourcedir(
        server,
        f"s3://training/{name}/sourcedir.tar.gz",
        {"train.py": "raise RuntimeError('boom')\n"},
    )
    create_job(sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir))
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Failed"
    assert "exited with status 1" in described["FailureReason"]
    assert "RuntimeError: boom" in described["FailureReason"]


SLEEPER = """\
import os, signal, sys, time
def stop(signum, frame):
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "partial.txt"), "w") as f:
        f.write("stopped cleanly")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("sleeping", flush=True)
time.sleep(600)
"""


def test_stop_and_max_runtime(server: SabioServer, sm: Any, logs: Any):
    name = unique("stop")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": SLEEPER}
    )
    create_job(sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir))
    wait_secondary(sm, name, "Training")
    wait_log(logs, name, "sleeping")
    sm.stop_training_job(TrainingJobName=name)
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    described = wait_job(sm, name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "Stopped")
    transitions = [t["Status"] for t in described["SecondaryStatusTransitions"]]
    assert transitions[-3:] == ["Stopping", "Uploading", "Stopped"]
    model = read_object(server, described["ModelArtifacts"]["S3ModelArtifacts"])
    assert members(model)["partial.txt"] == b"stopped cleanly"
    with pytest.raises(ClientError) as again:
        sm.stop_training_job(TrainingJobName=name)
    assert again.value.response["Error"]["Code"] == "ValidationException"

    name = unique("slow")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": SLEEPER}
    )
    create_job(sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir), max_runtime=2)
    described = wait_job(sm, name, timeout=60)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == (
        "Stopped",
        "MaxRuntimeExceeded",
    )


TWO_HOSTS = """\
import json, os, socket
host = os.environ["SM_CURRENT_HOST"]
seen = {
    "host": host,
    "hosts": json.loads(os.environ["SM_HOSTS"]),
    "master": os.environ["SM_MASTER_ADDR"],
    "files": sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])),
}
try:
    seen["algo_2"] = socket.gethostbyname("algo-2")
except OSError as exc:
    seen["algo_2"] = str(exc)
target = os.environ["SM_MODEL_DIR"] if host == "algo-1" else os.environ["SM_OUTPUT_DATA_DIR"]
with open(os.path.join(target, f"{host}.json"), "w") as f:
    json.dump(seen, f)
"""


def test_two_instances_see_each_other_and_shard_data(server: SabioServer, sm: Any):
    from support.training import put_bytes

    name = unique("pair")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": TWO_HOSTS}
    )
    for part in ("a", "b"):
        put_bytes(server, f"s3://training/{name}/data/{part}.csv", b"1,2\n")
    create_job(
        sm,
        name,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        channels=[channel("train", f"s3://training/{name}/data/", distribution="ShardedByS3Key")],
        instance_count=2,
    )
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    seen = json.loads(
        members(read_object(server, described["ModelArtifacts"]["S3ModelArtifacts"]))["algo-1.json"]
    )
    assert seen["hosts"] == ["algo-1", "algo-2"]
    assert seen["master"] == "algo-1"
    assert seen["files"] == ["a.csv"]
    from sabio.compute.sandbox import bubblewrap_available

    if bubblewrap_available():
        assert seen["algo_2"] == "127.0.0.1"


def test_create_time_validation(sm: Any):
    def error(**overrides: Any) -> str:
        with pytest.raises(ClientError) as raised:
            create_job(sm, unique("bad"), **overrides)
        assert raised.value.response["Error"]["Code"] in (
            "ValidationException",
            "ResourceLimitExceeded",
        )
        return str(raised.value.response["Error"]["Message"])

    assert "is not available in Sabio" in error(image="docker.io/me/trainer:1")
    assert "'..'" in error(channels=[channel("train", "s3://training/../etc/passwd")])
    assert "at most 8" in error(instance_count=9)
    assert "GPU" in error(instance_type="ml.p3.2xlarge")
    assert "Member must have length less than or equal to 2500" in error(
        hyperparameters={"big": "x" * 2501}
    )
    assert "Pipe" in error(algorithm={"TrainingInputMode": "Pipe"})


def test_missing_data_and_missing_script_fail_the_job(server: SabioServer, sm: Any):
    name = unique("nodata")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": TRAIN_PY}
    )
    create_job(
        sm,
        name,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        channels=[channel("train", "s3://training/nothing/here/")],
    )
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Failed"
    assert "no data found at s3://training/nothing/here/" in described["FailureReason"]

    name = unique("noscript")
    create_job(sm, name, hyperparameters=sdk_hyperparameters("missing.py", sourcedir))
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Failed"
    assert "missing.py does not exist" in described["FailureReason"]
