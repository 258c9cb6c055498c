"""The gateway and the platform see the same objects: a model uploaded with boto3's S3 client
is the one an endpoint serves, and what the platform writes is what S3 clients read."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.store import ObjectMetadata
from sabio.artifacts.uri import parse
from support.deploy import deploy, unique
from support.models import INFERENCE_PY, model_archive
from support.server import SabioServer


def test_a_model_uploaded_through_s3_is_served(
    s3: Any, sm: Any, runtime: Any, bucket: str, tmp_path: Path
) -> None:
    archive = model_archive(tmp_path / "model.tar.gz", {"code/inference.py": INFERENCE_PY})
    s3.upload_file(str(archive), bucket, "iris/model.tar.gz")
    name = deploy(sm, f"s3://{bucket}/iris/model.tar.gz", name=unique("gw"))
    try:
        response = runtime.invoke_endpoint(
            EndpointName=name,
            ContentType="application/json",
            Body=json.dumps([[5.1, 3.5, 1.4, 0.2]]),
        )
        assert json.loads(response["Body"].read()) == {"predictions": [0]}
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_sabio_s3_cp_and_the_store_see_gateway_objects(
    s3: Any, bucket: str, server: SabioServer, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket, Key="shared/data.csv", Body=b"a,b\n", ContentType="text/csv")
    target = tmp_path / "data.csv"
    subprocess.run(
        [sys.executable, "-m", "sabio", "s3", "cp", f"s3://{bucket}/shared/data.csv", str(target)],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "SABIO_HOME": str(server.home)},
    )
    assert target.read_bytes() == b"a,b\n"

    store = LocalArtifactStore(server.home / "artifacts")
    info = store.stat(parse(f"s3://{bucket}/shared/data.csv"))
    assert info is not None
    assert (info.metadata.content_type, info.etag) == (
        "text/csv",
        s3.head_object(Bucket=bucket, Key="shared/data.csv")["ETag"].strip('"'),
    )
    written = store.write(
        parse(f"s3://{bucket}/from-platform/out.json"),
        io.BytesIO(b"{}"),
        ObjectMetadata(content_type="application/json", user={"job": "j1"}),
    )
    got = s3.get_object(Bucket=bucket, Key="from-platform/out.json")
    assert (got["Body"].read(), got["ETag"]) == (b"{}", f'"{written.etag}"')
    assert (got["ContentType"], got["Metadata"]) == ("application/json", {"job": "j1"})


def test_files_placed_by_hand_are_objects_too(s3: Any, bucket: str, server: SabioServer) -> None:
    directory = server.home / "artifacts" / bucket / "by-hand"
    directory.mkdir(parents=True)
    (directory / "copied.txt").write_bytes(b"copied in")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="by-hand/")["Contents"]
    head = s3.head_object(Bucket=bucket, Key="by-hand/copied.txt")
    assert [(o["Key"], o["ETag"]) for o in listed] == [("by-hand/copied.txt", head["ETag"])]
    assert s3.get_object(Bucket=bucket, Key="by-hand/copied.txt")["Body"].read() == b"copied in"
