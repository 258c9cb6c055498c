"""``sabio serve-model``: load one model, then serve it over TCP or a Unix domain socket.

The model is loaded before the listening socket is served so that a broken model makes the
process exit quickly, with a one-line reason in ``--failure-file`` for the platform to show.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import zlib
from pathlib import Path

from sabio.serving.worker.app import DEFAULT_MAX_BODY, WorkerApp
from sabio.serving.worker.handlers import (
    DEFAULT_MODEL_DIR,
    ModelLoadError,
    one_line,
    resolve_code_dir,
)
from sabio.serving.worker.prefork import WorkersError, serve_forked, worker_count
from sabio.serving.worker.service import Service

logger = logging.getLogger("sabio.serving.worker")

EXIT_MODEL_FAILURE = 2
EXIT_SERVER_FAILURE = 3
DEFAULT_PORT = 8080
DEFAULT_KEEP_ALIVE = 75


class StartupError(Exception):
    """The model loaded but the worker cannot listen where it was asked to."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``serve-model`` options on ``parser``."""
    parser.add_argument(
        "--model-dir",
        type=Path,
        help=f"directory holding the model (default: {DEFAULT_MODEL_DIR}, or a fresh "
        "temporary directory with --model-data)",
    )
    parser.add_argument(
        "--model-data", type=Path, help="model.tar.gz to extract into the model directory first"
    )
    parser.add_argument("--host", default="127.0.0.1", help="TCP address (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        help="TCP port (default: $SAGEMAKER_BIND_TO_PORT or 8080; 0 picks a free one)",
    )
    parser.add_argument("--uds", type=Path, help="serve on this Unix domain socket instead of TCP")
    parser.add_argument(
        "--failure-file",
        type=Path,
        help="on a startup failure, write a one-line reason here (removed at start)",
    )
    parser.add_argument(
        "--install-requirements",
        action="store_true",
        help="pip-install the code directory's requirements.txt before loading",
    )
    parser.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=DEFAULT_KEEP_ALIVE,
        help="seconds an idle keep-alive connection stays open; keep it above the client "
        f"pool's idle timeout (default: {DEFAULT_KEEP_ALIVE})",
    )


def write_failure(path: Path | None, reason: str) -> None:
    """Atomically write ``reason`` as a single line, so readers never see a partial file."""
    if path is None:
        return
    line = " ".join(reason.split()) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(line, encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        logger.exception("Could not write the failure file %s", path)


def extract_model_data(archive: Path, model_dir: Path) -> None:
    """Unpack a model tarball, refusing members that would escape ``model_dir``."""
    if not archive.is_file():
        raise ModelLoadError(f"Model data {archive} does not exist")
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(model_dir, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ModelLoadError(f"Cannot extract {archive}: {one_line(exc)}") from exc


def install_requirements(model_dir: Path) -> None:
    """pip-install the user's requirements.txt into this interpreter (standalone runs only)."""
    requirements = resolve_code_dir(model_dir, os.environ) / "requirements.txt"
    if not requirements.is_file():
        return
    logger.info("Installing %s", requirements)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "-r", str(requirements)]
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise ModelLoadError(
            f"pip install -r {requirements} failed with exit code {completed.returncode}"
        )


def _bind_unix(path: Path) -> socket.socket:
    if path.is_socket():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()
            else:
                raise StartupError(f"Cannot listen on {path}: another process is serving it")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise StartupError(f"Cannot listen on {path}: {exc.strerror or exc}") from exc
    return sock


def _bind_tcp(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise StartupError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _port(args: argparse.Namespace) -> int:
    if args.port is not None:
        return int(args.port)
    value = os.environ.get("SAGEMAKER_BIND_TO_PORT", "").strip()
    if not value:
        return DEFAULT_PORT
    try:
        return int(value)
    except ValueError:
        raise StartupError(f"SAGEMAKER_BIND_TO_PORT={value!r} is not a port number") from None


def _max_body() -> int:
    """The body cap; 0 (a batch transform's chunked, unlimited mode) keeps the default cap."""
    value = os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip()
    try:
        megabytes = float(value) if value else 0.0
    except ValueError:
        raise StartupError(f"SAGEMAKER_MAX_PAYLOAD_IN_MB={value!r} is not a number") from None
    return int(megabytes * 1024 * 1024) if megabytes > 0 else DEFAULT_MAX_BODY


def _load(args: argparse.Namespace, model_dir: Path) -> Service:
    if args.model_data is not None:
        extract_model_data(args.model_data, model_dir)
    if args.install_requirements:
        install_requirements(model_dir)
    return Service.load(model_dir)


def _serve(app: WorkerApp, sock: socket.socket, timeout_keep_alive: int) -> None:
    import uvicorn

    from sabio.serving.worker.protocol import CoalescingHttpToolsProtocol

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=timeout_keep_alive,
    )
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the signal that stopped it; a no-op handler lets run() clean up.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve until SIGTERM/SIGINT; the process exit code."""
    if threading.current_thread() is threading.main_thread():
        # A SIGTERM while loading should still clean up the scratch model directory.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    failure_file: Path | None = args.failure_file
    if failure_file is not None:
        failure_file.unlink(missing_ok=True)
    scratch: Path | None = None
    sock: socket.socket | None = None
    try:
        if args.model_dir is not None:
            model_dir = Path(args.model_dir)
        elif args.model_data is not None:
            scratch = model_dir = Path(tempfile.mkdtemp(prefix="sabio-model-"))
        else:
            model_dir = Path(DEFAULT_MODEL_DIR)
        try:
            service = _load(args, model_dir)
        except ModelLoadError as exc:
            logger.error("Cannot load the model: %s", exc, exc_info=True)
            write_failure(failure_file, str(exc))
            return EXIT_MODEL_FAILURE
        except Exception as exc:
            logger.exception("Cannot load the model")
            write_failure(failure_file, f"Loading the model failed: {one_line(exc)}")
            return EXIT_MODEL_FAILURE
        try:
            max_body = _max_body()
            try:
                workers = worker_count(os.environ)
            except WorkersError as exc:
                raise StartupError(str(exc)) from None
            if args.uds is not None:
                sock = _bind_unix(Path(args.uds))
                where = f"unix:{args.uds}"
            else:
                sock = _bind_tcp(args.host, _port(args))
                address, port = sock.getsockname()[:2]
                where = (
                    f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"
                )
        except StartupError as exc:
            logger.error("%s", exc)
            write_failure(failure_file, str(exc))
            return EXIT_SERVER_FAILURE
        # The model and its libraries are long-lived: keep full collections from rescanning
        # them, which otherwise stalls a request for tens of milliseconds now and then.
        gc.collect()
        gc.freeze()
        logger.info("Serving %s on %s", model_dir, where)
        app = WorkerApp(service, max_body=max_body)
        if workers > 1:
            listening = sock
            return serve_forked(workers, lambda: _serve(app, listening, args.timeout_keep_alive))
        _serve(app, sock, args.timeout_keep_alive)
        return 0
    finally:
        if sock is not None:
            sock.close()
            if args.uds is not None:
                with contextlib.suppress(OSError):
                    Path(args.uds).unlink()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
