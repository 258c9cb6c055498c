"""The main job: `sabio quickstart` takes a model from training to a live prediction."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def test_quickstart_trains_deploys_and_predicts(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sabio", "quickstart", "--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "is InService" in out
    assert '-> {"predictions": ["' in out
    assert "invoke_endpoint(" in out
    assert "Server stopped cleanly" in out
    assert elapsed < 60
    log = (tmp_path / "home" / "server.log").read_text()
    assert "Traceback" not in log
