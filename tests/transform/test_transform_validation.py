"""CreateTransformJob's create-time checks, Describe/List/Stop of unknown or finished jobs."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.deploy import ROLE, SKLEARN_IMAGE, unique


@pytest.fixture
def model(sm: Any) -> str:
    name = unique("vmodel")
    sm.create_model(
        ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": SKLEARN_IMAGE}
    )
    return name


def request(model: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "TransformJobName": unique("v"),
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://input/data/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://out/x", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def error(sm: Any, body: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        sm.create_transform_job(**body)
    details = caught.value.response["Error"]
    return details["Code"], details["Message"]


def source(data_type: str, uri: str) -> dict[str, Any]:
    return {"DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": uri}}}


CASES: list[tuple[dict[str, Any], str]] = [
    (
        {"TransformInput": source("AugmentedManifestFile", "s3://input/m")},
        "TransformInput.DataSource.S3DataSource.S3DataType AugmentedManifestFile is not "
        "supported for batch transform; use S3Prefix or ManifestFile.",
    ),
    (
        {"TransformInput": source("S3Prefix", "https://in/data/")},
        "TransformInput.DataSource.S3DataSource.S3Uri must be an s3:// URI, not 'https://in/data/'.",
    ),
    (
        {"TransformInput": source("S3Prefix", "s3://input/../etc")},
        "The key of 's3://input/../etc' must not contain '.' or '..' path segments.",
    ),
    (
        {"TransformOutput": {"S3OutputPath": "https://example.com/out"}},
        "TransformOutput.S3OutputPath must be an s3:// URI, not 'https://example.com/out'.",
    ),
    ({"MaxPayloadInMB": 101}, "MaxPayloadInMB must be between 0 and 100; got 101."),
    (
        {"MaxPayloadInMB": 20, "MaxConcurrentTransforms": 6},
        "MaxConcurrentTransforms * MaxPayloadInMB must not exceed 100 MB; 6 * 20 = 120.",
    ),
    (
        {"MaxConcurrentTransforms": 17},
        "MaxConcurrentTransforms * MaxPayloadInMB must not exceed 100 MB; 17 * 6 = 102. "
        "(MaxPayloadInMB defaults to 6.)",
    ),
    (
        {"BatchStrategy": "MultiRecord", "TransformInput": {"SplitType": "None"}},
        "BatchStrategy MultiRecord needs TransformInput.SplitType Line, RecordIO or TFRecord; "
        "with SplitType None every request carries a whole object.",
    ),
    (
        {"DataProcessing": {"InputFilter": "$..features"}},
        "DataProcessing.InputFilter '$..features': recursive descent (..) is not supported; "
        "Sabio supports $, .name, .*, ['name','name'], [n], [n,m], negative indexes and "
        "[start:end].",
    ),
    (
        {"DataProcessing": {"OutputFilter": "$[?(@.a)]"}},
        "DataProcessing.OutputFilter '$[?(@.a)]': the filter expression [?(@.a)] is not "
        "supported; Sabio supports $, .name, .*, ['name','name'], [n], [n,m], negative indexes "
        "and [start:end].",
    ),
    (
        {"DataProcessing": {"InputFilter": "$.features"}},
        "DataProcessing.InputFilter '$.features' selects attributes by name, but CSV rows are "
        "arrays: use index paths such as $[1:] or $[0,-1].",
    ),
    (
        {"DataProcessing": {"JoinSource": "Input"}, "TransformOutput": {"AssembleWith": "None"}},
        "With ContentType text/csv, JoinSource and OutputFilter need "
        "TransformOutput.AssembleWith Line.",
    ),
    (
        {"DataProcessing": {"InputFilter": "$[1:]"}, "TransformInput": {"SplitType": "None"}},
        "With ContentType text/csv, DataProcessing needs TransformInput.SplitType Line.",
    ),
    (
        {"DataProcessing": {"JoinSource": "Input"}, "TransformInput": {"ContentType": "x/y"}},
        "DataProcessing needs TransformInput.ContentType text/csv, application/json or "
        "application/jsonlines; got 'x/y'.",
    ),
    (
        {
            "DataProcessing": {"JoinSource": "Input"},
            "TransformInput": {"SplitType": "RecordIO", "ContentType": "application/json"},
        },
        "DataProcessing works on CSV and JSON records; it cannot be used with SplitType RecordIO.",
    ),
    (
        {"DataProcessing": {"JoinSource": "Input"}, "TransformOutput": {"Accept": "image/png"}},
        "With DataProcessing, TransformOutput.Accept must be text/csv, application/json or "
        "application/jsonlines; got 'image/png'.",
    ),
    (
        {"DataCaptureConfig": {"DestinationS3Uri": "https://capture.example/x"}},
        "DataCaptureConfig.DestinationS3Uri must be an s3:// URI, not 'https://capture.example/x'.",
    ),
    (
        {"TransformResources": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1}},
        "Instance type ml.g5.xlarge (image "
        f"{SKLEARN_IMAGE}) needs a GPU or other accelerator and this machine has 0. Choose a "
        "CPU instance type and image.",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_create_time_validation(
    sm: Any, model: str, overrides: dict[str, Any], message: str
) -> None:
    assert error(sm, request(model, **overrides)) == ("ValidationException", message)


def test_unknown_model_and_too_many_instances(sm: Any, model: str) -> None:
    code, message = error(sm, request("no-such-model"))
    assert (code, message) == (
        "ValidationException",
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model".',
    )
    too_many = request(model, TransformResources={"InstanceCount": 9})
    assert error(sm, too_many) == (
        "ResourceLimitExceeded",
        "The job asks for 9 instances; this Sabio server runs at most 8 per job "
        "(SABIO_MAX_JOB_INSTANCES).",
    )


def test_pipelines_are_refused(sm: Any) -> None:
    name = unique("pipeline")
    container = {"Image": SKLEARN_IMAGE}
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Containers=[container, container])
    assert error(sm, request(name)) == (
        "ValidationException",
        f"Model {name} has 2 containers (an inference pipeline); batch transform supports "
        "models with one container for now.",
    )


def test_describe_list_and_stop(sm: Any, model: str) -> None:
    body = request(
        model,
        TransformInput=source("S3Prefix", "s3://input/nothing/"),
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    arn = sm.create_transform_job(**body)["TransformJobArn"]
    name = body["TransformJobName"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}"
    with pytest.raises(ClientError, match="Cannot create already existing transform job"):
        sm.create_transform_job(**body)
    described = sm.describe_transform_job(TransformJobName=name)
    assert described["TransformJobArn"] == arn
    assert described["ModelName"] == model
    assert described["TransformInput"]["CompressionType"] == "None"
    assert described["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 600,
        "InvocationsMaxRetries": 3,
    }
    assert "_Model" not in described
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    other = request(model, TransformInput=source("S3Prefix", "s3://input/nothing/"))
    other["TransformJobName"] = name + "-b"
    sm.create_transform_job(**other)
    page = sm.list_transform_jobs(NameContains=name, MaxResults=1, SortBy="Name")
    assert [s["TransformJobName"] for s in page["TransformJobSummaries"]] == [name + "-b"]
    page = sm.list_transform_jobs(NameContains=name, NextToken=page["NextToken"], SortBy="Name")
    assert [s["TransformJobName"] for s in page["TransformJobSummaries"]] == [name]
    assert "NextToken" not in page
    with pytest.raises(ClientError, match="Could not find transform job"):
        sm.describe_transform_job(TransformJobName="nope")
    with pytest.raises(ClientError, match="Could not find transform job"):
        sm.stop_transform_job(TransformJobName="nope")
    waiter = sm.get_waiter("transform_job_completed_or_stopped")
    with pytest.raises(Exception, match="Failed"):
        waiter.wait(TransformJobName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    failed = sm.list_transform_jobs(NameContains=name, StatusEquals="Failed")
    assert name in [s["TransformJobName"] for s in failed["TransformJobSummaries"]]
    with pytest.raises(ClientError, match="is Failed and cannot be stopped"):
        sm.stop_transform_job(TransformJobName=name)
