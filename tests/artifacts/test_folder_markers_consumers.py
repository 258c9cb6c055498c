"""Folder markers (keys ending in `/`, as consoles and `s3fs.mkdir` create) under a prefix that
the platform copies to local files: checkpoints, model data given as a prefix, and
`sabio s3 cp --recursive` all take the data and imply the folders."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import joblib

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from support.deploy import ROLE, SKLEARN_IMAGE, invoke_when_ready, unique
from support.models import INFERENCE_PY, iris_model
from support.server import SabioServer
from support.training import (
    create_job,
    members,
    put_sourcedir,
    read_object,
    sdk_hyperparameters,
    wait_job,
)

LIST_CHECKPOINTS = """\
import json, os
root = os.path.join(os.path.dirname(os.environ["SM_INPUT_DIR"]), "checkpoints")
found = {}
for folder, _, files in os.walk(root):
    for name in files:
        path = os.path.join(folder, name)
        found[os.path.relpath(path, root)] = open(path).read()
with open(os.path.join(os.environ["SM_MODEL_DIR"], "checkpoints.json"), "w") as f:
    json.dump(found, f)
"""


def put_tree(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def fresh_bucket(s3: Any) -> str:
    name = f"markers-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def test_training_starts_from_checkpoints_with_folder_markers(server: SabioServer, sm: Any) -> None:
    s3 = boto3.client("s3")
    bucket = fresh_bucket(s3)
    put_tree(
        s3,
        bucket,
        {
            "checkpoints/": b"",
            "checkpoints/step.txt": b"3",
            "checkpoints/optimizer/": b"",
            "checkpoints/optimizer/state.txt": b"adam",
        },
    )
    sourcedir = put_sourcedir(
        server, f"s3://{bucket}/code/sourcedir.tar.gz", {"train.py": LIST_CHECKPOINTS}
    )
    name = unique("markers")
    create_job(
        sm,
        name,
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        CheckpointConfig={"S3Uri": f"s3://{bucket}/checkpoints"},
    )
    described = wait_job(sm, name)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    model = members(read_object(server, described["ModelArtifacts"]["S3ModelArtifacts"]))
    assert json.loads(model["checkpoints.json"]) == {
        "step.txt": "3",
        "optimizer/state.txt": "adam",
    }


def test_model_data_prefix_with_folder_markers_deploys(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    bucket = fresh_bucket(s3)
    joblib.dump(iris_model(), tmp_path / "model.joblib")
    put_tree(
        s3,
        bucket,
        {
            "model/": b"",
            "model/model.joblib": (tmp_path / "model.joblib").read_bytes(),
            "model/code/": b"",
            "model/code/inference.py": INFERENCE_PY.encode(),
        },
    )
    name = unique("markers")
    source = {"S3Uri": f"s3://{bucket}/model/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataSource": {"S3DataSource": source}},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
        )
        body = json.dumps([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).encode()
        assert json.loads(invoke_when_ready(runtime, name, body)) == {"predictions": [0, 2]}
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_recursive_download_skips_folder_markers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = LocalArtifactStore(home / "artifacts")
    tree = {
        "tree/": b"",
        "tree/top.txt": b"top",
        "tree/sub/": b"",
        "tree/sub/inner.bin": b"\x00\x01",
        "tree/sub/deeper/": b"",
        "tree/sub/deeper/leaf.json": b"{}",
    }
    for key, body in tree.items():
        store.write(parse(f"s3://bucket/{key}"), io.BytesIO(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SABIO_")}
    home_option = ("--home", str(home))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sabio",
            "s3",
            "cp",
            "--recursive",
            "s3://bucket/tree",
            "copy",
            *home_option,
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"download: s3://bucket/tree/{relative} to copy/{relative}"
        for relative in ("sub/deeper/leaf.json", "sub/inner.bin", "top.txt")
    ]
    copy = tmp_path / "copy"
    copied = {
        p.relative_to(copy).as_posix(): p.read_bytes() for p in copy.rglob("*") if p.is_file()
    }
    assert copied == {
        "top.txt": b"top",
        "sub/inner.bin": b"\x00\x01",
        "sub/deeper/leaf.json": b"{}",
    }
