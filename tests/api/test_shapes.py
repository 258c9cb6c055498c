"""Request validation and response shaping against botocore's real SageMaker model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.model import OperationModel

from sabio import service_model
from sabio.api.shapes import missing_required_output, shape_output, validate_input
from sabio.errors import SerializationError, ValidationError

ROLE = "arn:aws:iam::123456789012:role/SabioExecution"


def op(name: str, service: str = service_model.SAGEMAKER) -> OperationModel:
    model = service_model.operation(name, service)
    assert model is not None
    return model


def rejection(name: str, params: object) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_input(op(name), params)
    return caught.value.message


def variant(**fields: Any) -> dict[str, Any]:
    return {"VariantName": "AllTraffic", "ModelName": "m", **fields}


def test_bad_endpoint_name_reports_the_pattern_as_aws_does() -> None:
    message = rejection("CreateEndpoint", {"EndpointName": "abc!", "EndpointConfigName": "cfg"})
    assert message == (
        "1 validation error detected: Value 'abc!' at 'endpointName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


def test_missing_required_member_is_null() -> None:
    message = rejection("CreateEndpointConfig", {"EndpointConfigName": "cfg"})
    assert message == (
        "1 validation error detected: Value null at 'productionVariants' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_explicit_null_for_required_member_counts_as_missing() -> None:
    params = {"EndpointConfigName": "cfg", "ProductionVariants": None}
    assert "Value null at 'productionVariants'" in rejection("CreateEndpointConfig", params)


def test_range_and_enum_violations_in_list_items_are_both_reported() -> None:
    params = {
        "EndpointConfigName": "cfg",
        "ProductionVariants": [variant(InitialInstanceCount=0, InstanceType="ml.foo")],
    }
    message = rejection("CreateEndpointConfig", params)
    assert message.startswith(
        "2 validation errors detected: Value '0' at "
        "'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1; Value 'ml.foo' at "
        "'productionVariants.1.member.instanceType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ml.t2.medium, "
    )
    assert message.endswith("]")
    assert "ml.m5.large" in message


def test_later_list_items_use_their_one_based_index() -> None:
    params = {
        "EndpointConfigName": "cfg",
        "ProductionVariants": [variant(), variant(VariantName="b", InitialInstanceCount=0)],
    }
    message = rejection("CreateEndpointConfig", params)
    assert "at 'productionVariants.2.member.initialInstanceCount'" in message


@pytest.mark.parametrize(
    ("value", "shown"), [("1", "1"), (True, "true"), (1.5, "1.5"), (2**40, str(2**40))]
)
def test_wrong_type_for_an_integer(value: object, shown: str) -> None:
    params = {
        "EndpointConfigName": "cfg",
        "ProductionVariants": [variant(InitialInstanceCount=value)],
    }
    assert rejection("CreateEndpointConfig", params) == (
        f"1 validation error detected: Value '{shown}' at "
        "'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: "
        "Member must be of type integer"
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"ModelName": "m", "PrimaryContainer": "img"},
            "Value 'img' at 'primaryContainer' failed to satisfy constraint: "
            "Member must be of type structure",
        ),
        (
            {"EndpointConfigName": "c", "ProductionVariants": {"VariantName": "v"}},
            """Value '{"VariantName":"v"}' at 'productionVariants' failed to satisfy """
            "constraint: Member must be of type list",
        ),
        (
            {"ModelName": "m", "PrimaryContainer": {"Environment": ["A"]}},
            """Value '["A"]' at 'primaryContainer.environment' failed to satisfy """
            "constraint: Member must be of type map",
        ),
        (
            {"ModelName": "m", "EnableNetworkIsolation": "yes"},
            "Value 'yes' at 'enableNetworkIsolation' failed to satisfy constraint: "
            "Member must be of type boolean",
        ),
    ],
)
def test_wrong_container_and_boolean_types(params: dict[str, Any], expected: str) -> None:
    operation = "CreateEndpointConfig" if "EndpointConfigName" in params else "CreateModel"
    assert rejection(operation, params) == f"1 validation error detected: {expected}"


def test_valid_create_model_is_returned_as_a_new_equal_dict() -> None:
    params = {
        "ModelName": "iris-model",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": "sabio/sklearn:1.5",
            "ModelDataUrl": "s3://bucket/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
        "Tags": [{"Key": "team", "Value": "ml"}],
        "EnableNetworkIsolation": False,
    }
    checked = validate_input(op("CreateModel"), params)
    assert checked == params
    assert checked is not params


def test_unknown_members_pass_through_and_nulls_are_dropped() -> None:
    params = {"MaxResults": 10, "NameContains": None, "Surprise": {"deep": [1, None]}}
    assert validate_input(op("ListModels"), params) == {
        "MaxResults": 10,
        "Surprise": {"deep": [1, None]},
    }


@pytest.mark.parametrize(
    ("value", "constraint"),
    [
        (0, "Member must have value greater than or equal to 1"),
        (101, "Member must have value less than or equal to 100"),
    ],
)
def test_list_models_max_results_range(value: int, constraint: str) -> None:
    assert rejection("ListModels", {"MaxResults": value}) == (
        f"1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy "
        f"constraint: {constraint}"
    )


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("2024-01-01T00:00:00Z", 1704067200.0),
        ("2024-01-01T01:00:00+01:00", 1704067200.0),
        ("2024-01-01T00:00:00", 1704067200.0),
        (1704067200, 1704067200.0),
        (1704067200.5, 1704067200.5),
    ],
)
def test_timestamps_become_epoch_floats(value: object, epoch: float) -> None:
    checked = validate_input(op("ListModels"), {"CreationTimeAfter": value})
    assert checked["CreationTimeAfter"] == epoch
    assert type(checked["CreationTimeAfter"]) is float


@pytest.mark.parametrize("value", ["yesterday", True, [2024]])
def test_unreadable_timestamp_is_a_type_error(value: object) -> None:
    message = rejection("ListModels", {"CreationTimeBefore": value})
    assert message.endswith(
        "at 'creationTimeBefore' failed to satisfy constraint: Member must be of type timestamp"
    )


def test_string_length_and_pattern_are_separate_violations_and_value_is_truncated() -> None:
    name = "a" * 150
    message = rejection("CreateEndpoint", {"EndpointName": name, "EndpointConfigName": "c"})
    assert message.startswith("2 validation errors detected: ")
    assert f"Value '{'a' * 100}' at 'endpointName'" in message
    assert "a" * 101 not in message
    assert "Member must have length less than or equal to 63" in message
    assert "Member must satisfy regular expression pattern" in message


def test_string_min_length() -> None:
    params = {"ModelName": "m", "Tags": [{"Key": "", "Value": "v"}]}
    assert rejection("CreateModel", params) == (
        "1 validation error detected: Value '' at 'tags.1.member.key' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
    )


def test_list_length_limits() -> None:
    params = {"EndpointConfigName": "c", "ProductionVariants": []}
    assert rejection("CreateEndpointConfig", params) == (
        "1 validation error detected: Value '[]' at 'productionVariants' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
    )


def test_message_lists_at_most_ten_violations_but_counts_all() -> None:
    params = {"ModelName": "m", "Tags": [{} for _ in range(12)]}
    message = rejection("CreateModel", params)
    assert message.startswith("24 validation errors detected: ")
    assert message.count("failed to satisfy constraint") == 10
    assert "'tags.1.member.key'" in message
    assert "'tags.5.member.value'" in message
    assert "'tags.6.member.key'" not in message


def test_map_keys_and_values_are_checked() -> None:
    params = {"ModelName": "m", "PrimaryContainer": {"Environment": {"BAD KEY": "v" * 1025}}}
    message = rejection("CreateModel", params)
    assert message.startswith("2 validation errors detected: ")
    assert (
        "at 'primaryContainer.environment.BAD KEY' failed to satisfy constraint: "
        "Member must have length less than or equal to 1024"
    ) in message
    assert """Value '{"BAD KEY":"vvv""" in message
    assert (
        "at 'primaryContainer.environment' failed to satisfy constraint: Map keys must satisfy "
        "constraint: [Member must satisfy regular expression pattern: ^[a-zA-Z_][a-zA-Z0-9_]*]"
    ) in message


def test_union_needs_exactly_one_member() -> None:
    base = {
        "AutoMLJobName": "job",
        "AutoMLJobInputDataConfig": [
            {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in"}}}
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "RoleArn": ROLE,
    }
    tabular = {"TargetAttributeName": "y"}
    validate_input(
        op("CreateAutoMLJobV2"), {**base, "AutoMLProblemTypeConfig": {"TabularJobConfig": tabular}}
    )
    for config in ({}, {"TabularJobConfig": tabular, "TextGenerationJobConfig": {}}):
        message = rejection("CreateAutoMLJobV2", {**base, "AutoMLProblemTypeConfig": config})
        assert (
            "at 'autoMLProblemTypeConfig' failed to satisfy constraint: "
            "Member must have exactly one member set"
        ) in message


def test_sensitive_values_are_not_echoed() -> None:
    oidc = {
        name: "https://idp.example.com/x"
        for name in (
            "ClientId",
            "Issuer",
            "AuthorizationEndpoint",
            "TokenEndpoint",
            "UserInfoEndpoint",
            "LogoutEndpoint",
            "JwksUri",
        )
    }
    oidc["ClientSecret"] = "hunter2\x01"
    message = rejection("CreateWorkforce", {"WorkforceName": "wf", "OidcConfig": oidc})
    assert "Value at 'oidcConfig.clientSecret' failed to satisfy constraint" in message
    assert "hunter2" not in message


def test_tag_patterns_python_cannot_compile_do_not_crash() -> None:
    params = {"ModelName": "m", "Tags": [{"Key": "ünïcode key", "Value": "välue"}]}
    assert validate_input(op("CreateModel"), params)["Tags"] == params["Tags"]


def test_blob_must_be_base64() -> None:
    invoke = op("InvokeEndpoint", service_model.RUNTIME)
    assert validate_input(invoke, {"EndpointName": "e", "Body": "aGVsbG8="})["Body"] == "aGVsbG8="
    with pytest.raises(ValidationError, match="Member must be of type blob"):
        validate_input(invoke, {"EndpointName": "e", "Body": "not base64!"})


@pytest.mark.parametrize("params", [[], "x", None, 3])
def test_body_must_be_an_object(params: object) -> None:
    with pytest.raises(SerializationError):
        validate_input(op("ListModels"), params)


def test_shape_output_keeps_declared_members_only() -> None:
    created = datetime(2024, 1, 1, tzinfo=UTC)
    data = {
        "EndpointName": "ep",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
        "EndpointStatus": "InService",
        "FailureReason": None,
        "CreationTime": created,
        "LastModifiedTime": datetime(2024, 1, 1, 1, 0),
        "InternalRowId": 42,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "CurrentWeight": 1.0,
                "CurrentInstanceCount": 1,
                "container_pid": 1234,
                "DeployedImages": [
                    {"SpecifiedImage": "img", "ResolutionTime": created + timedelta(seconds=1)}
                ],
            }
        ],
    }
    assert shape_output(op("DescribeEndpoint"), data) == {
        "EndpointName": "ep",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
        "EndpointStatus": "InService",
        "CreationTime": 1704067200.0,
        "LastModifiedTime": 1704070800.0,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "CurrentWeight": 1.0,
                "CurrentInstanceCount": 1,
                "DeployedImages": [{"SpecifiedImage": "img", "ResolutionTime": 1704067201.0}],
            }
        ],
    }


def test_shape_output_converts_aware_datetimes_and_numbers() -> None:
    eastern = timezone(timedelta(hours=-5))
    data = {"CreationTime": datetime(2023, 12, 31, 19, 0, tzinfo=eastern), "Models": [], "X": 1}
    shaped = shape_output(op("DescribeModel"), data)
    assert shaped == {"CreationTime": 1704067200.0}
    shaped = shape_output(op("ListModels"), {"Models": [{"ModelName": "m", "CreationTime": 5}]})
    assert shaped == {"Models": [{"ModelName": "m", "CreationTime": 5.0}]}


def test_shape_output_without_output_shape_is_empty() -> None:
    assert shape_output(op("DeleteModel"), {"anything": 1}) == {}


def test_missing_required_output_on_describe_endpoint() -> None:
    describe = op("DescribeEndpoint")
    assert missing_required_output(describe, {"EndpointName": "ep", "EndpointStatus": None}) == [
        "EndpointArn",
        "EndpointStatus",
        "CreationTime",
        "LastModifiedTime",
    ]
    complete = {
        "EndpointName": "ep",
        "EndpointArn": "arn",
        "EndpointStatus": "Creating",
        "CreationTime": 0.0,
        "LastModifiedTime": 0.0,
        "ProductionVariants": [{"VariantName": "a"}, {"CurrentWeight": 1.0}],
    }
    assert missing_required_output(describe, complete) == ["ProductionVariants.1.VariantName"]
    assert missing_required_output(op("DeleteModel"), {}) == []
