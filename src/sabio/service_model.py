"""botocore's bundled SageMaker service models: the schema of record for every request and
response Sabio handles."""

from __future__ import annotations

import functools
from typing import Any

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel

SAGEMAKER = "sagemaker"
RUNTIME = "sagemaker-runtime"


@functools.cache
def load(service: str = SAGEMAKER) -> ServiceModel:
    return ServiceModel(Loader().load_service_model(service, "service-2"), service_name=service)


def operation(name: str, service: str = SAGEMAKER) -> OperationModel | None:
    model = load(service)
    if name not in model.operation_names:
        return None
    return model.operation_model(name)


@functools.cache
def instance_type_names() -> frozenset[str]:
    """Every `ml.*` instance type named by any instance-type enum of the SageMaker model."""
    model = load(SAGEMAKER)
    names: set[str] = set()
    for shape_name in model.shape_names:
        if "InstanceType" not in shape_name:
            continue
        shape: Any = model.shape_for(shape_name)
        for value in getattr(shape, "enum", None) or []:
            if value.startswith("ml."):
                names.add(value)
    return frozenset(names)
