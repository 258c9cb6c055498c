"""Models: an image (environment) plus model data, recorded for endpoints to deploy."""

from __future__ import annotations

from typing import Any

from sabio.artifacts import uri as object_uri
from sabio.environments import images
from sabio.errors import ValidationError
from sabio.jobs.validation import check_process_text
from sabio.listing import list_page
from sabio.resources import MODEL, Catalog
from sabio.store.entities import Resource

_SPEC_MEMBERS = (
    "PrimaryContainer",
    "Containers",
    "InferenceExecutionConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
    "DeploymentRecommendation",
)


def containers_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec.get("PrimaryContainer"):
        return [spec["PrimaryContainer"]]
    return list(spec.get("Containers") or [])


def _check_container(container: dict[str, Any], where: str) -> None:
    if container.get("ModelPackageName"):
        raise ValidationError(f"{where}.ModelPackageName: model packages are not supported yet.")
    image = container.get("Image")
    if not image:
        raise ValidationError(f"{where}.Image is required.")
    images.resolve(image)
    check_process_text(container.get("Environment"), f"{where}.Environment")
    data_url = container.get("ModelDataUrl")
    if container.get("Mode") == "MultiModel":
        # The prefix holding the models that invocations name with TargetModel.
        if not data_url:
            raise ValidationError(
                f"{where}.ModelDataUrl is required for a container in MultiModel mode: the S3 "
                "prefix of its model archives."
            )
        if container.get("ModelDataSource"):
            raise ValidationError(
                f"{where}: MultiModel mode takes ModelDataUrl, not ModelDataSource."
            )
    if data_url:
        object_uri.require_s3(data_url, f"{where}.ModelDataUrl")
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    if source:
        object_uri.require_s3(source["S3Uri"], f"{where}.ModelDataSource.S3DataSource.S3Uri")
        if data_url:
            raise ValidationError(f"{where}: give ModelDataUrl or ModelDataSource, not both.")


class ModelService:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def operations(self) -> dict[str, Any]:
        return {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "ListModels": self.list_models,
            "DeleteModel": self.delete_model,
        }

    def create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        if bool(request.get("PrimaryContainer")) == bool(request.get("Containers")):
            raise ValidationError("Provide exactly one of PrimaryContainer and Containers.")
        if request.get("PrimaryContainer"):
            _check_container(request["PrimaryContainer"], "PrimaryContainer")
        for index, container in enumerate(request.get("Containers") or [], start=1):
            _check_container(container, f"Containers.{index}")
        spec = {key: request[key] for key in _SPEC_MEMBERS if key in request}
        resource = self.catalog.create(MODEL, request["ModelName"], spec, tags=request.get("Tags"))
        return {"ModelArn": resource.arn}

    def describe_model(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self.catalog.require(MODEL, request["ModelName"])
        return {
            "ModelName": resource.name,
            "ModelArn": resource.arn,
            "CreationTime": resource.created_at,
            **resource.spec,
        }

    def list_models(self, request: dict[str, Any]) -> dict[str, Any]:
        return list_page(self.catalog.repository, MODEL.key, request, "Models", _summary)

    def delete_model(self, request: dict[str, Any]) -> dict[str, Any]:
        self.catalog.delete(MODEL, request["ModelName"])
        return {}


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "ModelName": resource.name,
        "ModelArn": resource.arn,
        "CreationTime": resource.created_at,
    }
