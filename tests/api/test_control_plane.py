"""The JSON 1.1 control plane: validation, SageMaker's error codes and wording, paging, tags."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

from support.deploy import ROLE, SKLEARN_IMAGE, unique
from support.server import SabioServer


def raw(server: SabioServer, target: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    request = urllib.request.Request(f"{server.url}/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def unchecked(endpoint_url: str) -> Any:
    """A client that skips botocore's own checks, as a hand-written client would."""
    return boto3.client("sagemaker", config=Config(parameter_validation=False))


def make_model(sm: Any, name: str, **extra: Any) -> None:
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": "s3://models/x/model.tar.gz"},
        **extra,
    )


def test_model_crud_and_arns(sm: Any):
    name = unique("Model")
    arn = sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": "s3://models/x/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )["ModelArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:model/{name.lower()}"
    described = sm.describe_model(ModelName=name)
    assert described["ModelName"] == name
    assert described["ModelArn"] == arn
    assert described["ExecutionRoleArn"] == ROLE
    assert described["PrimaryContainer"]["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}
    assert described["CreationTime"].year >= 2024
    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as excinfo:
        sm.describe_model(ModelName=name)
    assert error_of(excinfo) == ("ValidationException", f'Could not find model "{arn}".', 400)


def test_duplicate_create_uses_sagemakers_wording(sm: Any):
    name = unique("dup")
    make_model(sm, name)
    with pytest.raises(ClientError) as excinfo:
        make_model(sm, name)
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith("Cannot create already existing model")


def test_missing_resources(sm: Any):
    for call, kwargs, noun in (
        (sm.describe_endpoint, {"EndpointName": "nope"}, "endpoint"),
        (sm.describe_endpoint_config, {"EndpointConfigName": "nope"}, "endpoint configuration"),
        (sm.delete_model, {"ModelName": "nope"}, "model"),
        (sm.delete_endpoint, {"EndpointName": "nope"}, "endpoint"),
    ):
        with pytest.raises(ClientError) as excinfo:
            call(**kwargs)
        code, message, status = error_of(excinfo)
        assert (code, status) == ("ValidationException", 400)
        assert message.startswith(f"Could not find {noun} ")


def test_references_must_exist(sm: Any):
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint_config(
            EndpointConfigName=unique("cfg"),
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "missing-model",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    assert error_of(excinfo)[1].startswith('Could not find model "arn:aws:sagemaker:')
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint(EndpointName=unique("ep"), EndpointConfigName="missing-config")
    assert error_of(excinfo)[1].startswith("Could not find endpoint configuration")


def test_waiter_fails_fast_on_missing_endpoint(sm: Any):
    started = time.monotonic()
    with pytest.raises(WaiterError):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="never-created", WaiterConfig={"Delay": 5, "MaxAttempts": 3}
        )
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (
            {"EndpointName": "bad_name!", "EndpointConfigName": "c"},
            "Value 'bad_name!' at 'endpointName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern",
        ),
        ({"EndpointName": "x" * 64, "EndpointConfigName": "c"}, "at 'endpointName'"),
        ({"EndpointConfigName": "c"}, "Value null at 'endpointName'"),
    ],
)
def test_create_endpoint_validation(endpoint_url: str, request_: dict[str, Any], fragment: str):
    with pytest.raises(ClientError) as excinfo:
        unchecked(endpoint_url).create_endpoint(**request_)
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert fragment in message


def test_variant_validation_names_member_and_rule(endpoint_url: str, sm: Any):
    model = unique("m")
    make_model(sm, model)
    client = unchecked(endpoint_url)
    variant = {"VariantName": "v", "ModelName": model, "InstanceType": "ml.m5.large"}
    cases = [
        (
            {**variant, "InitialInstanceCount": 0},
            "Member must have value greater than or equal to 1",
        ),
        ({**variant, "InitialInstanceCount": "two"}, "Member must be of type integer"),
        ({**variant, "InitialInstanceCount": True}, "Member must be of type integer"),
        (
            {**variant, "InstanceType": "ml.imaginary.huge", "InitialInstanceCount": 1},
            "Member must satisfy enum value set",
        ),
        ({**variant}, "InitialInstanceCount is required"),
        (
            {"VariantName": "v", "ModelName": model, "InitialInstanceCount": 1},
            "InstanceType is required",
        ),
    ]
    for bad, fragment in cases:
        with pytest.raises(ClientError) as excinfo:
            client.create_endpoint_config(EndpointConfigName=unique("c"), ProductionVariants=[bad])
        code, message, status = error_of(excinfo)
        assert (code, status) == ("ValidationException", 400), message
        assert fragment in message
    with pytest.raises(ClientError) as excinfo:
        client.create_endpoint_config(
            EndpointConfigName=unique("c"),
            ProductionVariants=[{**variant, "InitialInstanceCount": 0, "InstanceType": "ml.x"}],
        )
    assert error_of(excinfo)[1].startswith("2 validation errors detected")


def test_unknown_image_is_rejected_at_create(sm: Any):
    with pytest.raises(ClientError) as excinfo:
        sm.create_model(
            ModelName=unique("m"),
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "docker.io/library/my-own-server:latest"},
        )
    code, message, _ = error_of(excinfo)
    assert code == "ValidationException"
    assert "is not available in Sabio" in message


def test_model_data_outside_a_bucket_is_rejected(sm: Any):
    for url in (
        "s3://models/../../etc/passwd",
        "s3://models//etc/passwd",
        "file:///etc/passwd",
        "https://example.com/models/model.tar.gz",
    ):
        with pytest.raises(ClientError) as excinfo:
            sm.create_model(
                ModelName=unique("m"),
                ExecutionRoleArn=ROLE,
                PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": url},
            )
        assert error_of(excinfo)[0] == "ValidationException"


def test_unimplemented_and_unknown_operations(server: SabioServer, sm: Any):
    with pytest.raises(ClientError) as excinfo:
        sm.describe_domain(DomainId="d-123")
    code, message, status = error_of(excinfo)
    assert (code, status) == ("UnknownOperationException", 400)
    assert "DescribeDomain" in message
    status, body = raw(server, "SageMaker.MakeCoffee", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body = raw(server, None, b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")


def test_malformed_and_oversized_bodies(server: SabioServer):
    status, body = raw(server, "SageMaker.ListModels", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = raw(server, "SageMaker.ListModels", b"[1, 2]")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = raw(
        server, "SageMaker.ListModels", b'{"MaxResults": "' + b"9" * (17 << 20) + b'"}'
    )
    assert status == 413
    assert body["__type"] == "ValidationException"


def test_list_paging_sorting_and_filters(sm: Any):
    prefix = unique("page")
    before = time.time()
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        make_model(sm, name)
        time.sleep(0.01)
    paginator = sm.get_paginator("list_models")
    pages = list(
        paginator.paginate(
            NameContains=prefix,
            SortBy="Name",
            SortOrder="Ascending",
            PaginationConfig={"PageSize": 2},
        )
    )
    assert [len(p["Models"]) for p in pages] == [2, 2, 1]
    assert [m["ModelName"] for p in pages for m in p["Models"]] == names
    newest_first = sm.list_models(NameContains=prefix)["Models"]
    assert [m["ModelName"] for m in newest_first] == names[::-1]
    assert sm.list_models(NameContains=prefix, CreationTimeBefore=before)["Models"] == []
    after = sm.list_models(NameContains=prefix.upper(), CreationTimeAfter=before)["Models"]
    assert len(after) == 5
    with pytest.raises(ClientError) as excinfo:
        sm.list_models(NextToken="garbage")
    assert error_of(excinfo)[0] == "ValidationException"


def test_tags_on_every_resource(sm: Any):
    name = unique("tagged")
    make_model(sm, name, Tags=[{"Key": "team", "Value": "fraud"}])
    arn = sm.describe_model(ModelName=name)["ModelArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "fraud"}]
    sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "risk"}]
    )
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "stage", "Value": "dev"},
        {"Key": "team", "Value": "risk"},
    ]
    mixed_case = arn.rsplit("/", 1)[0] + "/" + name.upper()
    assert len(sm.list_tags(ResourceArn=mixed_case)["Tags"]) == 2
    sm.delete_tags(ResourceArn=arn, TagKeys=["stage"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "risk"}]
    config_arn = sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": name,
                "InstanceType": "ml.t2.medium",
                "InitialInstanceCount": 1,
            }
        ],
        Tags=[{"Key": "k", "Value": "v"}],
    )["EndpointConfigArn"]
    assert sm.list_tags(ResourceArn=config_arn)["Tags"] == [{"Key": "k", "Value": "v"}]
    with pytest.raises(ClientError) as excinfo:
        sm.add_tags(
            ResourceArn="arn:aws:sagemaker:us-east-1:123456789012:model/nope",
            Tags=[{"Key": "a", "Value": "b"}],
        )
    assert error_of(excinfo)[0] == "ValidationException"
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    with pytest.raises(ClientError) as excinfo:
        sm.add_tags(ResourceArn=arn, Tags=many)
    assert error_of(excinfo)[0] == "ResourceLimitExceeded"
    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError):
        sm.list_tags(ResourceArn=arn)


def test_endpoint_config_round_trip(sm: Any):
    model = unique("m")
    make_model(sm, model)
    name = unique("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "a",
                "ModelName": model,
                "InstanceType": "ml.c5.xlarge",
                "InitialInstanceCount": 2,
            }
        ],
    )
    described = sm.describe_endpoint_config(EndpointConfigName=name)
    assert described["ProductionVariants"] == [
        {
            "VariantName": "a",
            "ModelName": model,
            "InstanceType": "ml.c5.xlarge",
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 1.0,
        }
    ]
    listed = sm.list_endpoint_configs(NameContains=name)["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in listed] == [name]
    sm.delete_endpoint_config(EndpointConfigName=name)
    assert sm.list_endpoint_configs(NameContains=name)["EndpointConfigs"] == []


def test_responses_carry_every_required_member(server: SabioServer, sm: Any):
    from sabio import service_model
    from sabio.api.shapes import missing_required_output

    name = unique("complete")
    make_model(sm, name)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": name,
                "InstanceType": "ml.t2.medium",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    calls = [
        ("DescribeModel", {"ModelName": name}),
        ("DescribeEndpointConfig", {"EndpointConfigName": name}),
        ("DescribeEndpoint", {"EndpointName": name}),
        ("ListModels", {"NameContains": name}),
        ("ListEndpointConfigs", {"NameContains": name}),
        ("ListEndpoints", {"NameContains": name}),
        ("ListTags", {"ResourceArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}"}),
    ]
    for operation, params in calls:
        status, body = raw(server, f"SageMaker.{operation}", json.dumps(params).encode())
        assert status == 200, body
        model = service_model.operation(operation)
        assert model is not None
        assert missing_required_output(model, body) == [], operation
    sm.delete_endpoint(EndpointName=name)
