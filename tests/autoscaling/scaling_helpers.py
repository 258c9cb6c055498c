"""What the autoscaling tests share: fast autoscaler settings, an echo model and clients."""

from __future__ import annotations

from typing import Any

import boto3

from support.deploy import deploy, unique
from support.server import SabioServer

FAST = {
    "SABIO_AUTOSCALING_INTERVAL_SECONDS": "0.2",
    "SABIO_AUTOSCALING_METRIC_PERIOD_SECONDS": "1",
    "SABIO_AUTOSCALING_SCALE_OUT_DATAPOINTS": "1",
    "SABIO_AUTOSCALING_SCALE_IN_DATAPOINTS": "3",
}

ECHO = """\
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return body, "application/json"
"""


class Clients:
    def __init__(self, server: SabioServer) -> None:
        self.server = server
        self.sm: Any = boto3.client("sagemaker")
        self.runtime: Any = boto3.client("sagemaker-runtime")
        self.aas: Any = boto3.client("application-autoscaling")
        self.cloudwatch: Any = boto3.client("cloudwatch")


def deploy_echo(clients: Clients, uri: str, **config: Any) -> str:
    return deploy(clients.sm, uri, name=unique("scale"), **config)


def resource_id(endpoint: str, variant: str = "AllTraffic") -> str:
    return f"endpoint/{endpoint}/variant/{variant}"
