"""`sabio`: the server, the model worker, artifact copies and the quick start."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from sabio import __version__


def _settings(args: argparse.Namespace) -> object:
    from sabio.config import Settings

    overrides = {
        key: getattr(args, key)
        for key in ("host", "port", "home")
        if getattr(args, key, None) is not None
    }
    return Settings(**overrides)


def cmd_server(args: argparse.Namespace) -> int:
    import uvicorn

    from sabio.config import Settings, unknown_variables
    from sabio.server import build_app
    from sabio.serving.worker.protocol import CoalescingHttpToolsProtocol

    settings = _settings(args)
    assert isinstance(settings, Settings)
    for name in unknown_variables(os.environ):
        print(f"sabio: warning: {name} is not a Sabio setting; ignoring it", file=sys.stderr)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app, _ = build_app(settings, dict(os.environ))
    print(
        f"Sabio {__version__} listening on http://{settings.host}:{settings.port} "
        f"(home {settings.home})",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with each response's head and first body bytes in one write.
        http=CoalescingHttpToolsProtocol,
        # Sabio is reached directly, not through a proxy whose headers it should trust.
        proxy_headers=False,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal through the handler
    # that was installed before it: make that an ordinary exit with status 0.
    signal.signal(signal.SIGTERM, _exit_after_shutdown)
    uvicorn.Server(config).run()
    return 0


def _exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve_model(args: argparse.Namespace) -> int:
    from sabio.serving.worker import main as worker

    return worker.run(args)


def cmd_s3(args: argparse.Namespace) -> int:
    from sabio.cli.s3 import copy
    from sabio.config import Settings

    settings = _settings(args)
    assert isinstance(settings, Settings)
    return copy(settings, args.source, args.destination, recursive=args.recursive)


def cmd_logs(args: argparse.Namespace) -> int:
    from sabio.cli import logs

    if args.home is None and args.endpoint_url is None:
        args.endpoint_url = os.environ.get("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS") or os.environ.get(
            "AWS_ENDPOINT_URL"
        )
    return logs.run(args)


def cmd_db(args: argparse.Namespace) -> int:
    from sabio.config import Settings
    from sabio.store import database

    settings = _settings(args)
    assert isinstance(settings, Settings)
    url = settings.resolved_database_url
    engine = database.create(url) if args.db_command == "upgrade" else database.connect(url)
    try:
        revision = database.current_revision(engine) or "none (empty database)"
    finally:
        engine.dispose()
    print(f"{database.safe_url(url)}: schema revision {revision}")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    from sabio.environments import images

    rows = images.available()
    print(f"{'IMAGE':22} {'BUILT-IN ALGORITHM':19} {'PACKAGES':40} SAGEMAKER REPOSITORIES")
    for row in rows:
        print(
            f"{row['image']:22} {row['builtin_algorithm'] or '-':19} {row['packages']:40} "
            f"{row['sagemaker_repositories'] or '-'}"
        )
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from sabio.cli.quickstart import run

    return run(home=args.home, keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sabio", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sabio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    server = commands.add_parser("server", help="run the Sabio server")
    server.add_argument("--host", help="address to bind (default 127.0.0.1)")
    server.add_argument("--port", type=int, help="port to listen on (default 8080)")
    server.add_argument("--home", type=Path, help="data directory (default ~/.sabio)")
    server.set_defaults(func=cmd_server)

    from sabio.serving.worker import main as worker

    serve = commands.add_parser(
        "serve-model", help="serve a model under the SageMaker hosting contract"
    )
    worker.add_arguments(serve)
    serve.set_defaults(func=cmd_serve_model)

    s3 = commands.add_parser("s3", help="copy files to and from s3:// artifact URIs")
    s3_commands = s3.add_subparsers(dest="s3_command", required=True)
    cp = s3_commands.add_parser("cp", help="copy a file (or a directory with --recursive)")
    cp.add_argument("source")
    cp.add_argument("destination")
    cp.add_argument("--recursive", action="store_true")
    cp.add_argument("--home", type=Path, help="data directory (default ~/.sabio)")
    cp.set_defaults(func=cmd_s3)

    from sabio.cli import logs as logs_cli

    logs_parser = commands.add_parser(
        "logs", help="print (and follow) a training job's or a log group's logs"
    )
    logs_cli.add_arguments(logs_parser)
    logs_parser.set_defaults(func=cmd_logs)

    db = commands.add_parser("db", help="the metadata database: schema migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    for name, text in (
        ("upgrade", "migrate the schema to the newest revision"),
        ("current", "print the schema revision"),
    ):
        command = db_commands.add_parser(name, help=text)
        command.add_argument("--home", type=Path, help="data directory (default ~/.sabio)")
        command.set_defaults(func=cmd_db)

    images_parser = commands.add_parser("images", help="list the images Sabio can run")
    images_parser.set_defaults(func=cmd_images)

    quickstart = commands.add_parser(
        "quickstart", help="train, deploy and invoke a model on a fresh embedded server"
    )
    quickstart.add_argument("--home", type=Path, help="data directory (default: a temporary one)")
    quickstart.add_argument(
        "--keep", action="store_true", help="leave the server running when done"
    )
    quickstart.set_defaults(func=cmd_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from pydantic import ValidationError

        from sabio.errors import SabioError

        if isinstance(exc, SabioError):
            print(f"sabio: {exc.message}", file=sys.stderr)
            return 2
        if isinstance(exc, ValidationError):
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"])
                print(
                    f"sabio: setting {field} (SABIO_{field.upper()}): {error['msg']}",
                    file=sys.stderr,
                )
            return 2
        raise
