"""CreateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint.

These only record the desired state and return at once; the controller brings it about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sabio.errors import ValidationError
from sabio.listing import list_page
from sabio.resources import ENDPOINT, ENDPOINT_CONFIG, MODEL, Catalog
from sabio.store.entities import Resource

CREATING = "Creating"
IN_SERVICE = "InService"
DELETING = "Deleting"
FAILED = "Failed"


class EndpointService:
    def __init__(self, catalog: Catalog, notify: Callable[[], None]) -> None:
        self.catalog = catalog
        self.notify = notify

    def operations(self) -> dict[str, Any]:
        return {
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "ListEndpoints": self.list_endpoints,
            "DeleteEndpoint": self.delete_endpoint,
        }

    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        config = self.catalog.require(ENDPOINT_CONFIG, request["EndpointConfigName"])
        models = {}
        for variant in config.spec["ProductionVariants"]:
            model = self.catalog.require(MODEL, variant["ModelName"])
            models[variant["ModelName"]] = model.spec
        # The endpoint keeps a copy of what it was created from: SageMaker endpoints go on
        # serving after their config or model is deleted.
        spec = {
            "EndpointConfigName": config.name,
            "DeploymentConfig": request.get("DeploymentConfig"),
            "Config": config.spec,
            "Models": models,
        }
        resource = self.catalog.create(
            ENDPOINT, request["EndpointName"], spec, tags=request.get("Tags"), status=CREATING
        )
        self.notify()
        return {"EndpointArn": resource.arn}

    def describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self.catalog.require(ENDPOINT, request["EndpointName"])
        response: dict[str, Any] = {
            "EndpointName": resource.name,
            "EndpointArn": resource.arn,
            "EndpointConfigName": resource.spec["EndpointConfigName"],
            "EndpointStatus": resource.status,
            "CreationTime": resource.created_at,
            "LastModifiedTime": resource.updated_at,
            "ProductionVariants": resource.state.get("ProductionVariants"),
            "FailureReason": resource.state.get("FailureReason"),
        }
        return response

    def list_endpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        return list_page(self.catalog.repository, ENDPOINT.key, request, "Endpoints", _summary)

    def delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        resource = self.catalog.require(ENDPOINT, name)
        if resource.status != DELETING:
            updated = self.catalog.repository.update(ENDPOINT.key, name, status=DELETING)
            if updated is None:
                raise ValidationError(f'Could not find endpoint "{resource.arn}".')
        self.notify()
        return {}


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "EndpointName": resource.name,
        "EndpointArn": resource.arn,
        "CreationTime": resource.created_at,
        "LastModifiedTime": resource.updated_at,
        "EndpointStatus": resource.status,
    }
