"""Running the uv binary with a deadline, turning failures into errors a user can act on."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from sabio.environments.spec import EnvironmentBuildError

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PREAMBLE = re.compile(r"^Using \S+ \S+ (environment|interpreter) at")
_TAIL_LINES = 15
_TAIL_CHARS = 3000


class UvRunner:
    """Runs `uv <args>` with our cache and no colours or progress bars, since output is logged."""

    def __init__(self, uv_bin: Path | None, *, cache_dir: Path, cwd: Path) -> None:
        self._uv_bin = uv_bin
        self.cache_dir = cache_dir
        self.cwd = cwd

    @property
    def uv_bin(self) -> Path:
        if self._uv_bin is None:
            from uv import find_uv_bin  # the `uv` wheel is a server dependency

            self._uv_bin = Path(find_uv_bin())
        return self._uv_bin

    def run(self, arguments: list[str], *, deadline: float, action: str) -> str:
        """uv's combined output; EnvironmentBuildError with its last lines if it fails."""
        command = [
            str(self.uv_bin),
            *arguments,
            "--cache-dir",
            str(self.cache_dir),
            "--color",
            "never",
            "--no-progress",
        ]
        self.cwd.mkdir(parents=True, exist_ok=True)
        # A session of its own, so a timeout kills uv together with any build backends it started.
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            _kill_group(process)
            output, _ = process.communicate()
            raise EnvironmentBuildError(
                f"Could not {action}: uv did not finish within the build timeout.\n{tail(output)}"
            ) from None
        except BaseException:
            _kill_group(process)
            process.wait()
            raise
        if process.returncode != 0:
            raise EnvironmentBuildError(
                f"Could not {action}: uv exited with status {process.returncode}.\n{tail(output)}"
            )
        return output


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def tail(output: str) -> str:
    """The last lines of uv's output, where it says what went wrong."""
    lines = [_ANSI.sub("", line).rstrip() for line in output.splitlines()]
    kept = "\n".join(line for line in lines if line.strip() and not _PREAMBLE.match(line))
    kept = "\n".join(kept.splitlines()[-_TAIL_LINES:])
    return kept[-_TAIL_CHARS:]
