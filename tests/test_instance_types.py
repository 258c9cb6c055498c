"""The instance-type table: SageMaker's names with the CPUs, memory and accelerators they mean."""

from __future__ import annotations

from sabio import instance_types
from sabio.instance_types import GIB


def test_sizes_follow_ec2() -> None:
    m5 = instance_types.lookup("ml.m5.xlarge")
    assert m5 is not None
    assert (m5.cpus, m5.memory_bytes, m5.gpus) == (4, 16 * GIB, 0)
    c5 = instance_types.lookup("ml.c5.2xlarge")
    assert c5 is not None
    assert (c5.cpus, c5.memory_bytes) == (8, 16 * GIB)
    t2 = instance_types.lookup("ml.t2.medium")
    assert t2 is not None
    assert (t2.cpus, t2.memory_bytes) == (2, 4 * GIB)


def test_accelerated_types_are_marked() -> None:
    for name in ("ml.g4dn.xlarge", "ml.p3.2xlarge", "ml.inf2.xlarge", "ml.trn1.2xlarge"):
        described = instance_types.lookup(name)
        assert described is not None, name
        assert described.gpus >= 1, name


def test_every_known_name_comes_from_sagemakers_model() -> None:
    table = instance_types.known_instance_types()
    assert len(table) > 300
    assert instance_types.lookup("ml.imaginary.large") is None
    assert all(name.startswith("ml.") for name in table)
