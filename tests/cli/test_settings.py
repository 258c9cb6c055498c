"""Settings: every one from a `SABIO_` variable, bad values refused, CLI flags over variables."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pydantic import ValidationError

from sabio.cli.main import _settings, build_parser
from sabio.config import Settings, unknown_variables
from support.server import free_port

EVERY_SETTING = {
    "HOME": "/srv/sabio-home",
    "HOST": "0.0.0.0",
    "PORT": "9123",
    "DATABASE_URL": "postgresql+psycopg://sabio@db.internal/sabio",
    "ARTIFACT_ROOT": "/srv/blobs",
    "REGION": "eu-west-3",
    "ACCOUNT_ID": "000011112222",
    "MAX_INVOCATION_BYTES": "1000",
    "MAX_REQUEST_BYTES": "2000",
    "INVOCATION_TIMEOUT_SECONDS": "1.5",
    "WORKER_STARTUP_TIMEOUT_SECONDS": "2.5",
    "WORKER_STOP_GRACE_SECONDS": "3.5",
    "RECONCILE_INTERVAL_SECONDS": "0.25",
    "HEALTH_CHECK_INTERVAL_SECONDS": "2.5",
    "CAPTURE_FLUSH_SECONDS": "0.5",
    "MAX_INSTANCES_PER_ENDPOINT": "3",
    "MAX_JOB_INSTANCES": "4",
    "JOB_STOP_GRACE_SECONDS": "4.5",
    "AUTOSCALING_INTERVAL_SECONDS": "0.75",
    "AUTOSCALING_METRIC_PERIOD_SECONDS": "10",
    "AUTOSCALING_SCALE_OUT_DATAPOINTS": "2",
    "AUTOSCALING_SCALE_IN_DATAPOINTS": "6",
    "ASYNC_MAX_INLINE_BYTES": "4096",
    "ASYNC_LEASE_SECONDS": "7.5",
    "ASYNC_POLL_INTERVAL_SECONDS": "0.2",
    "NOTIFICATION_DELIVERY_ATTEMPTS": "6",
    "NOTIFICATION_RETRY_BASE_SECONDS": "0.1",
    "NOTIFICATION_RETRY_MAX_SECONDS": "2.5",
    "NOTIFICATION_DELIVERY_TIMEOUT_SECONDS": "3.5",
    "SERVERLESS_IDLE_SECONDS": "45",
    "SERVERLESS_MAX_WORKERS": "2",
    "MME_MAX_LOADED": "5",
    "PREWARM": "false",
    "PREWARM_ENVIRONMENTS": "3",
    "LOG_LEVEL": "debug",
    "S3_ENDPOINT_URL": "http://minio.internal:9000",
    "S3_REGION": "eu-west-3",
    "S3_ACCESS_KEY_ID": "minio",
    "S3_SECRET_ACCESS_KEY": "minio-secret",
    "S3_ADDRESSING_STYLE": "path",
    "S3_MULTIPART_MAX_AGE_SECONDS": "3600",
    "S3_MULTIPART_SWEEP_INTERVAL_SECONDS": "60",
    "S3_VIRTUAL_HOST_BASES": '["s3.example.internal"]',
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No SABIO_ variable from the outside world, and a private HOME and cwd."""
    for key in list(os.environ):
        if key.startswith("SABIO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_every_setting_comes_from_a_sabio_variable(clean_env: pytest.MonkeyPatch) -> None:
    assert {name.upper() for name in Settings.model_fields} == set(EVERY_SETTING)
    for name, value in EVERY_SETTING.items():
        clean_env.setenv(f"SABIO_{name}", value)

    settings = Settings()
    assert settings.home == Path("/srv/sabio-home")
    assert settings.host == "0.0.0.0"
    assert settings.port == 9123
    assert settings.database_url == "postgresql+psycopg://sabio@db.internal/sabio"
    assert settings.resolved_database_url == settings.database_url
    assert settings.artifact_root == Path("/srv/blobs")
    assert settings.resolved_artifact_root == Path("/srv/blobs")
    assert settings.region == "eu-west-3"
    assert settings.account_id == "000011112222"
    assert settings.max_invocation_bytes == 1000
    assert settings.max_request_bytes == 2000
    assert settings.invocation_timeout_seconds == 1.5
    assert settings.worker_startup_timeout_seconds == 2.5
    assert settings.worker_stop_grace_seconds == 3.5
    assert settings.reconcile_interval_seconds == 0.25
    assert settings.health_check_interval_seconds == 2.5
    assert settings.capture_flush_seconds == 0.5
    assert settings.max_instances_per_endpoint == 3
    assert settings.max_job_instances == 4
    assert settings.job_stop_grace_seconds == 4.5
    assert settings.autoscaling_interval_seconds == 0.75
    assert settings.autoscaling_metric_period_seconds == 10
    assert settings.autoscaling_scale_out_datapoints == 2
    assert settings.autoscaling_scale_in_datapoints == 6
    assert settings.async_max_inline_bytes == 4096
    assert settings.async_lease_seconds == 7.5
    assert settings.async_poll_interval_seconds == 0.2
    assert settings.mme_max_loaded == 5
    assert settings.notification_delivery_attempts == 6
    assert settings.notification_retry_base_seconds == 0.1
    assert settings.notification_retry_max_seconds == 2.5
    assert settings.notification_delivery_timeout_seconds == 3.5
    assert settings.serverless_idle_seconds == 45
    assert settings.serverless_max_workers == 2
    assert settings.prewarm is False
    assert settings.prewarm_environments == 3
    assert settings.log_level == "debug"
    assert settings.s3_endpoint_url == "http://minio.internal:9000"
    assert settings.s3_region == "eu-west-3"
    assert settings.s3_access_key_id is not None
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "minio-secret"
    assert "minio-secret" not in repr(settings)
    assert settings.s3_addressing_style == "path"
    assert settings.s3_multipart_max_age_seconds == 3600
    assert settings.s3_multipart_sweep_interval_seconds == 60
    assert settings.s3_virtual_host_bases == ["s3.example.internal"]


def test_defaults(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings()
    home = (tmp_path / "user-home" / ".sabio").resolve()
    assert (settings.home, settings.host, settings.port) == (home, "127.0.0.1", 8080)
    assert (settings.region, settings.account_id) == ("us-east-1", "123456789012")
    assert settings.resolved_database_url == f"sqlite:///{home / 'sabio.db'}"
    assert settings.resolved_artifact_root == home / "artifacts"


def test_home_is_made_absolute(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("SABIO_HOME", "relative/home")
    assert Settings().home == (tmp_path / "relative" / "home").resolve()
    clean_env.setenv("SABIO_HOME", "~/under-user")
    assert Settings().home == (tmp_path / "user-home" / "under-user").resolve()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "65536"),
        ("PORT", "-1"),
        ("REGION", "Mars"),
        ("REGION", "us-east"),
        ("REGION", "US-EAST-1"),
        ("ACCOUNT_ID", "12345"),
        ("ACCOUNT_ID", "1234567890123"),
        ("ACCOUNT_ID", "abcdefghijkl"),
        ("MAX_INSTANCES_PER_ENDPOINT", "0"),
        ("MME_MAX_LOADED", "0"),
        ("MAX_INVOCATION_BYTES", "6MB"),
        ("INVOCATION_TIMEOUT_SECONDS", "soon"),
        ("LOG_LEVEL", "loud"),
    ],
)
def test_invalid_values_are_rejected(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(f"SABIO_{name}", value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert [error["loc"] for error in raised.value.errors()] == [(name.lower(),)]


def test_misspelt_variables_are_named() -> None:
    environ = {"SABIO_PROT": "9000", "SABIO_PORT": "9000", "HOME": "/root"}
    assert unknown_variables(environ) == ["SABIO_PROT"]


def test_unknown_settings_are_rejected(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        Settings(prot=9000)  # type: ignore[call-arg]


def test_cli_flags_override_variables(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("SABIO_HOST", "192.0.2.1")
    clean_env.setenv("SABIO_PORT", "1111")
    clean_env.setenv("SABIO_HOME", str(tmp_path / "from-env"))
    clean_env.setenv("SABIO_REGION", "eu-west-1")
    parser = build_parser()

    args = parser.parse_args(["server", "--host", "::1", "--port", "2222", "--home", "flag"])
    settings = _settings(args)
    assert isinstance(settings, Settings)
    assert (settings.host, settings.port, settings.home) == ("::1", 2222, tmp_path / "flag")
    assert settings.region == "eu-west-1"  # no flag: the variable still counts

    settings = _settings(parser.parse_args(["server"]))
    assert isinstance(settings, Settings)
    assert (settings.host, settings.port, settings.home) == (
        "192.0.2.1",
        1111,
        tmp_path / "from-env",
    )

    settings = _settings(parser.parse_args(["s3", "cp", "a", "s3://b/c", "--home", "cp-home"]))
    assert isinstance(settings, Settings)
    assert (settings.home, settings.port) == (tmp_path / "cp-home", 1111)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_server_flags_win_over_variables_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    port, env_port = free_port(), free_port()
    home = tmp_path / "flag-home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SABIO_")},
        "SABIO_PORT": str(env_port),
        "SABIO_HOME": str(tmp_path / "env-home"),
        "SABIO_HOST": "192.0.2.1",  # TEST-NET-1: not an address of this machine, binding fails
    }
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "sabio", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--home", str(home)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"http://127.0.0.1:{port}/healthz"):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", env_port)) != 0
        assert (home / "sabio.db").is_file()
        assert not (tmp_path / "env-home").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    output_text = log.read_text()
    assert returncode == 0, output_text
    assert f"listening on http://127.0.0.1:{port} (home {home})" in output_text
    assert "Application shutdown complete" in output_text
    assert "Traceback" not in output_text


def test_a_bad_setting_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "SABIO_PORT": "eighty", "SABIO_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "sabio", "server"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "sabio: setting port (SABIO_PORT)" in result.stderr
