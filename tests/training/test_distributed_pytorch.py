"""A PyTorch script using torch.distributed (gloo) across two instances of one job."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
from typing import Any

import pytest

from sabio.compute.sandbox import bubblewrap_available
from support.deploy import unique
from support.server import SabioServer
from support.training import (
    create_job,
    members,
    put_sourcedir,
    read_object,
    sdk_hyperparameters,
    wait_job,
)

DISTRIBUTED = """\
import json, os
import torch
import torch.distributed as dist

hosts = json.loads(os.environ["SM_HOSTS"])
rank = hosts.index(os.environ["SM_CURRENT_HOST"])
address = f"tcp://{os.environ['SM_MASTER_ADDR']}:{os.environ['SM_MASTER_PORT']}"
dist.init_process_group("gloo", init_method=address, rank=rank, world_size=len(hosts))
value = torch.tensor([rank + 1.0])
dist.all_reduce(value)
if rank == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "result.json"), "w") as f:
        json.dump({"sum": value.item(), "world": dist.get_world_size()}, f)
dist.destroy_process_group()
"""


def _torch_available() -> bool:
    wheels = [
        path
        for folder in os.environ.get("PIP_FIND_LINKS", "").split()
        for path in glob.glob(os.path.join(folder, "torch-2.13.0+cpu-*.whl"))
    ]
    return bool(wheels) or importlib.util.find_spec("torch") is not None


@pytest.mark.slow
@pytest.mark.skipif(not bubblewrap_available(), reason="host names resolve only in the sandbox")
@pytest.mark.skipif(not _torch_available(), reason="no CPU build of torch 2.13.0 to install here")
def test_gloo_all_reduce_across_two_instances(server: SabioServer, sm: Any):
    name = unique("torch")
    sourcedir = put_sourcedir(
        server, f"s3://training/{name}/sourcedir.tar.gz", {"train.py": DISTRIBUTED}
    )
    create_job(
        sm,
        name,
        image="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3.0-cpu-py311",
        hyperparameters=sdk_hyperparameters("train.py", sourcedir),
        instance_count=2,
    )
    described = wait_job(sm, name, timeout=600)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    result = json.loads(
        members(read_object(server, described["ModelArtifacts"]["S3ModelArtifacts"]))["result.json"]
    )
    assert result == {"sum": 3.0, "world": 2}
