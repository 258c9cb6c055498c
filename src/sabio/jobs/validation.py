"""Create-time checks that training and processing jobs share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sabio import instance_types
from sabio.environments import images
from sabio.errors import ResourceLimitExceededError, ValidationError


def check_resources(
    image: str,
    instance_type: str | None,
    count: int,
    *,
    max_instances: int,
    gpus_available: int,
) -> images.ImageSpec:
    """The image and instances a job asks for exist here; returns the image's environment."""
    spec = images.resolve(image)
    if not instance_type:
        raise ValidationError("The instance type is required.")
    described = instance_types.lookup(instance_type)
    if described is None:
        raise ValidationError(f"Instance type '{instance_type}' is not known.")
    if described.gpus > gpus_available or (spec.gpu and not gpus_available):
        raise ValidationError(
            f"Instance type {instance_type} (image {image}) needs a GPU or other accelerator "
            f"and this machine has {gpus_available}. Choose a CPU instance type and image."
        )
    if count > max_instances:
        raise ResourceLimitExceededError(
            f"The job asks for {count} instances; this Sabio server runs at most "
            f"{max_instances} per job (SABIO_MAX_JOB_INSTANCES)."
        )
    return spec


def check_process_text(values: Mapping[str, str] | Sequence[str] | None, where: str) -> None:
    """Arguments and environment variables reach `exec`, which cannot pass a NUL character;
    the model's patterns allow one, so without this check the job would fail inside Sabio."""
    items = list(values.items()) if isinstance(values, Mapping) else [("", v) for v in values or ()]
    for key, value in items:
        if "\0" in key or "\0" in value:
            raise ValidationError(f"{where} must not contain a NUL character.")
