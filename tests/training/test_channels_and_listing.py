"""Input channels (ManifestFile, FastFile), metric definitions and listing filters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.deploy import unique
from support.server import SabioServer
from support.training import (
    create_job,
    members,
    put_bytes,
    put_sourcedir,
    read_object,
    sdk_hyperparameters,
    wait_job,
)

LIST_FILES = """\
import json, os
root = os.environ["SM_CHANNEL_TRAIN"]
found = sorted(
    os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
)
config = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "inputdataconfig.json")))
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
    json.dump({"files": found, "config": config["train"]}, f)
"""


def test_manifest_file_channel_in_fast_file_mode(server: SabioServer, sm: Any):
    name = unique("manifest")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": LIST_FILES}
    )
    put_bytes(server, f"s3://training/{name}/data/a.csv", b"1\n")
    put_bytes(server, f"s3://training/{name}/data/sub/b.csv", b"2\n")
    put_bytes(server, f"s3://training/{name}/data/ignored.csv", b"3\n")
    manifest = [{"prefix": f"s3://training/{name}/data/"}, "a.csv", "sub/b.csv"]
    put_bytes(server, f"s3://training/{name}/train.manifest", json.dumps(manifest).encode())
    create_job(
        sm,
        name,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        channels=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "ManifestFile",
                        "S3Uri": f"s3://training/{name}/train.manifest",
                    }
                },
            }
        ],
        algorithm={"TrainingInputMode": "FastFile"},
    )
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    seen = json.loads(
        members(read_object(server, described["ModelArtifacts"]["S3ModelArtifacts"]))["seen.json"]
    )
    assert seen["files"] == ["a.csv", "sub/b.csv"]
    assert seen["config"]["ContentType"] == "text/csv"
    assert seen["config"]["TrainingInputMode"] == "File"

    broken = unique("badmanifest")
    put_bytes(
        server,
        f"s3://training/{broken}/train.manifest",
        json.dumps([{"prefix": f"s3://training/{name}/data/"}, "nope.csv"]).encode(),
    )
    create_job(
        sm,
        broken,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        channels=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "ManifestFile",
                        "S3Uri": f"s3://training/{broken}/train.manifest",
                    }
                },
            }
        ],
    )
    described = wait_job(sm, broken)
    assert described["TrainingJobStatus"] == "Failed"
    assert "nope.csv, which does not exist" in described["FailureReason"]


def test_invalid_metric_regex_and_status_filter(server: SabioServer, sm: Any):
    with pytest.raises(ClientError) as raised:
        create_job(
            sm,
            unique("regex"),
            hyperparameters=sdk_hyperparameters("train.py", "s3://training/x/sourcedir.tar.gz"),
            algorithm={"MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9"}]},
        )
    assert "MetricDefinitions" in raised.value.response["Error"]["Message"]

    name = unique("listed")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": "print('ok')\n"}
    )
    create_job(sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir))
    assert wait_job(sm, name)["TrainingJobStatus"] == "Completed"
    completed = sm.list_training_jobs(NameContains=name, StatusEquals="Completed")[
        "TrainingJobSummaries"
    ]
    assert [j["TrainingJobName"] for j in completed] == [name]
    assert (
        sm.list_training_jobs(NameContains=name, StatusEquals="Failed")["TrainingJobSummaries"]
        == []
    )
    arn = sm.describe_training_job(TrainingJobName=name)["TrainingJobArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "ml"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_describe_training_job_has_every_required_member(server: SabioServer, sm: Any):
    from sabio import service_model
    from sabio.api.shapes import missing_required_output

    name = unique("shape")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": "pass\n"}
    )
    create_job(sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir))
    described = wait_job(sm, name)
    model = service_model.operation("DescribeTrainingJob")
    assert model is not None
    raw = {k: v for k, v in described.items() if k != "ResponseMetadata"}
    assert missing_required_output(model, raw) == []


@pytest.mark.slow
def test_sourcedir_requirements_are_installed_for_the_job(server: SabioServer, sm: Any):
    import importlib.util

    if importlib.util.find_spec("roman") is not None:
        pytest.skip("the test environment already has 'roman'; the test needs a missing package")
    name = unique("reqs")
    script = (
        "import os, roman\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'four.txt'), 'w').write(roman.toRoman(4))\n"
    )
    sourcedir = put_sourcedir(
        server,
        f"s3://training/{name}/sourcedir.tar.gz",
        {"train.py": script, "requirements.txt": "roman==4.2\n"},
    )
    create_job(sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir))
    described = wait_job(sm, name, timeout=180)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    model = members(read_object(server, described["ModelArtifacts"]["S3ModelArtifacts"]))
    assert model["four.txt"] == b"IV"


def test_the_failure_reason_names_the_instance_that_failed(server: SabioServer, sm: Any):
    name = unique("onefails")
    script = (
        "import os, sys, time\n"
        "if os.environ['SM_CURRENT_HOST'] == 'algo-2':\n"
        "    print('algo-2 gives up', flush=True)\n"
        "    sys.exit(5)\n"
        "time.sleep(120)\n"
    )
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": script}
    )
    create_job(
        sm, name, hyperparameters=sdk_hyperparameters("train.py", sourcedir), instance_count=2
    )
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Failed"
    assert "on algo-2 exited with status 5" in described["FailureReason"]
    assert "algo-2 gives up" in described["FailureReason"]
    assert "ModelArtifacts" not in described
