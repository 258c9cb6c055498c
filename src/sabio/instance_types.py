"""The `ml.*` instance types Sabio knows, with the CPUs, memory and GPUs each stands for.

The set of names is SageMaker's own (every instance-type enum in botocore's service model); the
resources follow EC2's published sizes: a size's vCPUs come from its name (`large` = 2,
`xlarge` = 4, `Nxlarge` = 4N) and memory from the family's GiB per vCPU.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from sabio import service_model

GIB = 1024**3

# GiB of memory per vCPU, by family prefix (longest prefix wins).
_MEMORY_PER_VCPU = {
    "c": 2.0,
    "m": 4.0,
    "r": 8.0,
    "t": 4.0,
    "i3en": 8.0,
    "x": 16.0,
    "g4dn": 4.0,
    "g5": 4.0,
    "g6": 4.0,
    "g6e": 8.0,
    "g7": 4.0,
    "g7e": 8.0,
    "gr6": 8.0,
    "p2": 15.25,
    "p3": 7.625,
    "p3dn": 8.0,
    "p4": 12.0,
    "p5": 10.67,
    "p6": 10.67,
    "dl1": 8.0,
    "inf": 2.0,
    "trn": 4.0,
}

# Explicit (vCPUs, GiB, GPUs) where the size rule does not hold.
_EXPLICIT: dict[str, tuple[int, float, int]] = {
    "ml.t2.medium": (2, 4, 0),
    "ml.t2.large": (2, 8, 0),
    "ml.t2.xlarge": (4, 16, 0),
    "ml.t2.2xlarge": (8, 32, 0),
    "ml.t3.micro": (2, 1, 0),
    "ml.t3.small": (2, 2, 0),
    "ml.t3.medium": (2, 4, 0),
    "ml.t3.large": (2, 8, 0),
    "ml.t3.xlarge": (4, 16, 0),
    "ml.t3.2xlarge": (8, 32, 0),
    "ml.p2.xlarge": (4, 61, 1),
    "ml.p2.8xlarge": (32, 488, 8),
    "ml.p2.16xlarge": (64, 732, 16),
    "ml.p3.2xlarge": (8, 61, 1),
    "ml.p3.8xlarge": (32, 244, 4),
    "ml.p3.16xlarge": (64, 488, 8),
    "ml.g4dn.12xlarge": (48, 192, 4),
    "ml.g5.12xlarge": (48, 192, 4),
    "ml.g5.24xlarge": (96, 384, 4),
    "ml.g5.48xlarge": (192, 768, 8),
}

# Families with accelerators (GPUs, Inferentia, Trainium) that a CPU machine cannot stand in for.
_GPU_FAMILIES = ("p", "g", "dl", "inf", "trn")
_SIZE = re.compile(r"^(?:(\d+)xlarge|xlarge|large|medium|small|micro|metal)$")


@dataclass(frozen=True)
class InstanceType:
    name: str
    cpus: int
    memory_bytes: int
    gpus: int

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB


def _vcpus(size: str) -> int | None:
    match = _SIZE.match(size)
    if not match:
        return None
    if match.group(1):
        return 4 * int(match.group(1))
    return {"xlarge": 4, "large": 2, "medium": 1, "small": 1, "micro": 1}.get(size)


def _memory_per_vcpu(family: str) -> float:
    for length in range(len(family), 0, -1):
        ratio = _MEMORY_PER_VCPU.get(family[:length])
        if ratio is not None:
            return ratio
    return 4.0


def _describe(name: str) -> InstanceType | None:
    if name in _EXPLICIT:
        cpus, gib, gpus = _EXPLICIT[name]
        return InstanceType(name, cpus, int(gib * GIB), gpus)
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != "ml":
        return None
    family, size = parts[1], parts[2]
    vcpus = _vcpus(size)
    if vcpus is None:
        return None
    cpus = vcpus
    gpus = 0
    if family.startswith(_GPU_FAMILIES) and not family.startswith("gr"):
        gpus = 8 if cpus >= 96 else 1
    return InstanceType(name, cpus, int(cpus * _memory_per_vcpu(family) * GIB), gpus)


@functools.cache
def known_instance_types() -> dict[str, InstanceType]:
    """Every `ml.*` type named in SageMaker's model that has a known size."""
    table: dict[str, InstanceType] = {}
    for name in service_model.instance_type_names():
        described = _describe(name)
        if described is not None:
            table[name] = described
    return table


def lookup(name: str) -> InstanceType | None:
    return known_instance_types().get(name)
