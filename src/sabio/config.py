"""The one settings object: built once by an entry point and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path.home() / ".sabio"


class Settings(BaseSettings):
    """Every setting of a Sabio server; each can be set as a `SABIO_<NAME>` variable."""

    model_config = SettingsConfigDict(env_prefix="SABIO_", extra="forbid")

    home: Path = Field(default_factory=default_home)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    database_url: str | None = None
    artifact_root: Path | None = None
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    account_id: str = Field(default="123456789012", pattern=r"^\d{12}$")
    max_invocation_bytes: int = 6 * 1024 * 1024
    max_request_bytes: int = 16 * 1024 * 1024
    invocation_timeout_seconds: float = 60.0
    worker_startup_timeout_seconds: float = 240.0
    worker_stop_grace_seconds: float = 10.0
    reconcile_interval_seconds: float = 1.0
    health_check_interval_seconds: float = Field(default=5.0, gt=0)
    capture_flush_seconds: float = Field(default=5.0, gt=0)
    max_instances_per_endpoint: int = Field(default=8, ge=1)
    max_job_instances: int = Field(default=8, ge=1)
    job_stop_grace_seconds: float = Field(default=10.0, ge=0)
    # Endpoint autoscaling: how often the autoscaler runs, the period of one metric datapoint,
    # and how many datapoints in a row a target tracking policy's high (scale out) and low
    # (scale in) alarms need, as the alarms AWS creates for such a policy do (3 and 15).
    autoscaling_interval_seconds: float = Field(default=5.0, gt=0)
    autoscaling_metric_period_seconds: float = Field(default=60.0, gt=0)
    autoscaling_scale_out_datapoints: int = Field(default=3, ge=1)
    autoscaling_scale_in_datapoints: int = Field(default=15, ge=1)
    # Asynchronous inference: the inline Body cap (InvokeEndpointAsync's own limit), how long a
    # claimed request stays leased to this server without a heartbeat (after a crash it returns
    # to the queue when the lease runs out), and how often the queue is polled while an
    # asynchronous endpoint exists (with none, it is not polled at all).
    async_max_inline_bytes: int = Field(default=128_000, ge=0)
    async_lease_seconds: float = Field(default=30.0, gt=0)
    async_poll_interval_seconds: float = Field(default=0.5, gt=0)
    # SNS HTTP(S) delivery: attempts per message, exponential back-off from the base delay up
    # to the cap, and the timeout of one POST (SNS's own is 15 s).
    notification_delivery_attempts: int = Field(default=4, ge=1)
    notification_retry_base_seconds: float = Field(default=1.0, ge=0)
    notification_retry_max_seconds: float = Field(default=20.0, ge=0)
    notification_delivery_timeout_seconds: float = Field(default=15.0, gt=0)
    # Serverless variants: a worker unused this long is stopped (down to ProvisionedConcurrency)
    # and at most this many workers run per variant (each serves one request at a time).
    serverless_idle_seconds: float = Field(default=300.0, gt=0)
    serverless_max_workers: int = Field(default=4, ge=1)
    # Endpoint workers (real-time and serverless) fork from a pre-warmed parent process of their
    # environment unless that is turned off; at start the server pre-warms the parents of this
    # many recently used environments (0: none until one is used).
    prewarm: bool = True
    prewarm_environments: int = Field(default=2, ge=0)
    # Multi-model variants: at most this many models loaded (one worker each) per variant; the
    # least recently used idle one is unloaded to make room.
    mme_max_loaded: int = Field(default=8, ge=1)
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    # An S3-compatible artifact store (AWS S3, MinIO, Ceph) instead of files under the home.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["path", "virtual", "auto"] = "auto"
    # The S3 gateway: multipart uploads initiated longer ago than this are aborted (checked
    # every sweep interval), and requests to `<bucket>.<base host>` address the bucket by host
    # name (virtual-hosted style) for each base host listed.
    s3_multipart_max_age_seconds: float = Field(default=7 * 86400.0, gt=0)
    s3_multipart_sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    s3_virtual_host_bases: list[str] = Field(
        default_factory=lambda: ["localhost", "s3.localhost.localstack.cloud"]
    )

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'sabio.db'}"

    @property
    def resolved_artifact_root(self) -> Path:
        return (self.artifact_root or self.home / "artifacts").expanduser().resolve()

    @property
    def environments_dir(self) -> Path:
        return self.home / "environments"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`SABIO_` variables that name no setting: most likely typos, worth a warning."""
    known = {f"SABIO_{name.upper()}" for name in Settings.model_fields}
    return sorted(k for k in environ if k.startswith("SABIO_") and k not in known)
