"""Images are environments: an image URI names a Python environment, not a container.

Sabio's own names (`sabio/sklearn`) and the SageMaker framework image URIs users already write
(`<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3`) both map to an
`ImageSpec`: the framework it serves and the packages its environment needs.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from sabio.errors import ValidationError


@dataclass(frozen=True)
class ImageSpec:
    name: str
    framework: str
    requirements: tuple[str, ...]
    gpu: bool = False
    algorithm: str | None = None


SKLEARN = ImageSpec("sabio/sklearn", "sklearn", ("scikit-learn", "joblib", "numpy"))
XGBOOST = ImageSpec(
    "sabio/xgboost", "xgboost", ("xgboost-cpu", "scikit-learn", "numpy"), algorithm="xgboost"
)
LINEAR_LEARNER = ImageSpec(
    "sabio/linear-learner",
    "linear-learner",
    ("scikit-learn", "joblib", "numpy"),
    algorithm="linear-learner",
)
# The CPU build of PyTorch; an unpinned `torch` would resolve to a build with GPU libraries.
PYTORCH = ImageSpec("sabio/pytorch", "pytorch", ("torch==2.13.0+cpu", "numpy"))

BUILTIN: dict[str, ImageSpec] = {
    spec.name: spec for spec in (SKLEARN, XGBOOST, LINEAR_LEARNER, PYTORCH)
}

# SageMaker ECR repository names, mapped to the Sabio image that stands in for them.
_ECR_REPOSITORIES: dict[str, ImageSpec] = {
    "sagemaker-scikit-learn": SKLEARN,
    "sagemaker-sklearn-automl": SKLEARN,
    "sagemaker-xgboost": XGBOOST,
    "xgboost": XGBOOST,
    "linear-learner": LINEAR_LEARNER,
    "pytorch-inference": PYTORCH,
    "pytorch-training": PYTORCH,
}

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repository>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9._-]+)|@sha256:[0-9a-f]{64})?$"
)
_SABIO = re.compile(r"^(?P<name>sabio/[a-z0-9-]+)(?::(?P<tag>[A-Za-z0-9._-]+))?$")


def resolve(image: str) -> ImageSpec:
    """The environment an image stands for; an image Sabio cannot provide is a client error."""
    match = _SABIO.match(image)
    if match and match.group("name") in BUILTIN:
        return BUILTIN[match.group("name")]
    match = _ECR.match(image)
    if match:
        spec = _ECR_REPOSITORIES.get(match.group("repository"))
        tag = match.group("tag") or ""
        if spec is not None:
            gpu = "gpu" in tag.split("-")
            return dataclasses.replace(spec, gpu=gpu)
    known = ", ".join(sorted(BUILTIN))
    repositories = ", ".join(sorted(_ECR_REPOSITORIES))
    raise ValidationError(
        f"Image '{image}' is not available in Sabio: it runs images as Python environments and "
        f"knows {known} and the SageMaker framework images {repositories}."
    )


def available() -> list[dict[str, str]]:
    """What `sabio images` lists: each Sabio image and the SageMaker repositories mapped to it."""
    rows = []
    for spec in BUILTIN.values():
        repositories = sorted(r for r, s in _ECR_REPOSITORIES.items() if s.name == spec.name)
        rows.append(
            {
                "image": spec.name,
                "framework": spec.framework,
                "packages": " ".join(spec.requirements),
                "sagemaker_repositories": ", ".join(repositories),
                "builtin_algorithm": spec.algorithm or "",
            }
        )
    return rows
