"""The environment the SageMaker training toolkit gives a script: `SM_*` variables and the
hyperparameters as command-line arguments, mapped exactly as the toolkit maps them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Hyperparameters the SageMaker SDKs add for the toolkit; they are not the user's.
RESERVED_PREFIX = "sagemaker_"
RESERVED = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)


def decode(value: str) -> Any:
    """The toolkit JSON-decodes every value and keeps the raw string when that fails."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def split_hyperparameters(raw: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user hyperparameters, SageMaker's own `sagemaker_*` ones), both decoded."""
    user: dict[str, Any] = {}
    framework: dict[str, Any] = {}
    for key, value in raw.items():
        target = framework if key in RESERVED or key.startswith(RESERVED_PREFIX) else user
        target[key] = decode(value)
    return user, framework


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """Sorted keys, `--key value`, `-k value` for one-letter keys, dicts as `k=v,k2=v2`."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args.append(f"-{key}" if len(key) == 1 else f"--{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in value.items()))
        else:
            args.append(str(value))
    return args


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def resource_config(current_host: str, hosts: list[str], instance_type: str) -> dict[str, Any]:
    """`resourceconfig.json`, with every key the toolkit and the SDK v3 drivers read."""
    return {
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts,
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": instance_type,
                "hosts": hosts,
            }
        ],
        "network_interface_name": "eth0",
    }


def training_env(
    *,
    opt_ml: str,
    job_name: str,
    current_host: str,
    hosts: list[str],
    instance_type: str,
    cpus: int,
    gpus: int,
    channels: Mapping[str, Mapping[str, Any]],
    raw_hyperparameters: Mapping[str, str],
    entry_point: str | None,
    module_dir: str | None,
    master_port: int,
    region: str,
) -> dict[str, str]:
    """Every `SM_*` variable of the training toolkit, for one host."""
    user, framework = split_hyperparameters(raw_hyperparameters)
    module_name = (entry_point or "").removesuffix(".py") or None
    config = resource_config(current_host, hosts, instance_type)
    env: dict[str, Any] = {
        "hosts": hosts,
        "network_interface_name": "eth0",
        "hps": user,
        "user_entry_point": entry_point,
        "framework_params": {k: v for k, v in framework.items()},
        "resource_config": config,
        "input_data_config": channels,
        "output_data_dir": f"{opt_ml}/output/data",
        "channels": sorted(channels),
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_instance_group": "homogeneousCluster",
        "current_instance_group_hosts": hosts,
        "instance_groups": ["homogeneousCluster"],
        "instance_groups_dict": {"homogeneousCluster": config["instance_groups"][0]},
        "distribution_instance_groups": [],
        "is_hetero": False,
        "module_name": module_name,
        "log_level": 20,
        "framework_module": None,
        "input_dir": f"{opt_ml}/input",
        "input_config_dir": f"{opt_ml}/input/config",
        "output_dir": f"{opt_ml}/output",
        "num_cpus": cpus,
        "num_gpus": gpus,
        "num_neurons": 0,
        "model_dir": f"{opt_ml}/model",
        "module_dir": module_dir,
        "user_args": to_cmd_args(user),
        "output_intermediate_dir": f"{opt_ml}/output/intermediate",
        "host_count": len(hosts),
        "current_host_rank": hosts.index(current_host),
        "master_addr": hosts[0],
        "master_port": master_port,
        "source_dir": module_dir,
        "entry_script": entry_point,
        "output_failure": f"{opt_ml}/output/failure",
    }
    variables = {
        f"SM_{key.upper()}": _encode(value) for key, value in env.items() if value is not None
    }
    variables["SM_TRAINING_ENV"] = json.dumps(
        {**env, "job_name": job_name, "additional_framework_parameters": {}},
        sort_keys=True,
        separators=(",", ":"),
    )
    for name in channels:
        variables[f"SM_CHANNEL_{name.upper()}"] = f"{opt_ml}/input/data/{name}"
    for key, value in user.items():
        variables[f"SM_HP_{key.upper()}"] = _encode(value)
    variables.update(
        {
            "TRAINING_JOB_NAME": job_name,
            "SAGEMAKER_JOB_NAME": job_name,
            "CURRENT_HOST": current_host,
            "SAGEMAKER_REGION": region,
            "SM_STUDIO_LOCAL_MODE": "false",
        }
    )
    return variables
