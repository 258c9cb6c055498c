"""`sabio logs`: print, and with `--follow` keep printing, the log streams of a training job or
of any log group, the way `fit(logs=True)` shows them.

It reads through a running server's Logs API with boto3 (`--endpoint-url`), or straight from a
Sabio home on this machine (`--home`), which works while the server is down.
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from sabio.errors import LogResourceNotFoundError
from sabio.telemetry.logs import LogStore, store_root

TRAINING_JOBS = "/aws/sagemaker/TrainingJobs"
DEFAULT_ENDPOINT_URL = "http://127.0.0.1:8080"
POLL_SECONDS = 0.5


class _GroupMissing(Exception):
    pass


class _Source(Protocol):
    def streams(self, group: str, prefix: str | None) -> list[str]: ...

    def page(self, group: str, stream: str, token: str | None) -> tuple[list[Any], str]: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        metavar="GROUP_OR_JOB",
        help=f"a log group (starts with /) or a training job name (its streams in {TRAINING_JOBS})",
    )
    parser.add_argument(
        "--stream-prefix",
        help="only streams whose names start with this (for a job: after '<job>/')",
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new events until Ctrl-C"
    )
    parser.add_argument(
        "--raw", action="store_true", help="print only the messages, without time and stream"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--home", type=Path, help="read this Sabio home directly")
    where.add_argument(
        "--endpoint-url", help=f"the Sabio server to ask (default {DEFAULT_ENDPOINT_URL})"
    )


def run(args: argparse.Namespace) -> int:
    group, prefix = target(args.name, args.stream_prefix)
    source: _Source
    if args.home is not None:
        home = Path(args.home).expanduser().resolve()
        if not home.is_dir():
            print(f"sabio: there is no Sabio home at {home}", file=sys.stderr)
            return 1
        source = _LocalSource(LogStore(store_root(home)))
    else:
        source = _RemoteSource(args.endpoint_url or DEFAULT_ENDPOINT_URL)
    printer = _Printer(sys.stdout, raw=args.raw)
    try:
        return (
            _follow(source, group, prefix, printer)
            if args.follow
            else _once(source, group, prefix, printer)
        )
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`sabio logs job | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except _SourceError as error:
        print(f"sabio: {error}", file=sys.stderr)
        return 1


def target(name: str, stream_prefix: str | None) -> tuple[str, str | None]:
    """The log group and stream prefix to read: a bare name is a training job."""
    if name.startswith("/"):
        return name, stream_prefix
    return TRAINING_JOBS, f"{name}/{stream_prefix or ''}"


def _once(source: _Source, group: str, prefix: str | None, printer: _Printer) -> int:
    try:
        streams = source.streams(group, prefix)
    except _GroupMissing:
        raise _SourceError(f"The log group {group} does not exist.") from None
    if not streams:
        where = f" with names starting {prefix!r}" if prefix else ""
        raise _SourceError(f"The log group {group} has no log streams{where}.")
    _print_new(source, group, streams, {}, printer)
    return 0


def _follow(source: _Source, group: str, prefix: str | None, printer: _Printer) -> int:
    tokens: dict[str, str] = {}
    while True:
        try:
            streams = source.streams(group, prefix)
        except _GroupMissing:
            streams = []  # the job has not started yet
        _print_new(source, group, streams, tokens, printer)
        time.sleep(POLL_SECONDS)


def _print_new(
    source: _Source,
    group: str,
    streams: list[str],
    tokens: dict[str, str],
    printer: _Printer,
) -> None:
    """Print every event past each stream's token, interleaved by time, and move the tokens."""
    readers = [_read_stream(source, group, stream, tokens) for stream in streams]
    for _, stream, event in heapq.merge(*readers, key=lambda item: item[0]):
        printer.print(stream, event)
    printer.flush()


def _read_stream(
    source: _Source, group: str, stream: str, tokens: dict[str, str]
) -> Iterator[tuple[int, str, Any]]:
    """A stream's events from its token on, a page at a time, until the token stops moving."""
    token = tokens.get(stream)
    while True:
        try:
            events, next_token = source.page(group, stream, token)
        except _GroupMissing:
            return
        for event in events:
            yield int(event["timestamp"]), stream, event
        if not events or next_token == token:
            tokens[stream] = next_token
            return
        token = tokens[stream] = next_token


class _Printer:
    def __init__(self, out: TextIO, *, raw: bool) -> None:
        self.out = out
        self.raw = raw

    def print(self, stream: str, event: Any) -> None:
        message = str(event["message"])
        if self.raw:
            self.out.write(f"{message}\n")
            return
        moment = datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC)
        when = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.out.write(f"{when} {stream} {message}\n")

    def flush(self) -> None:
        self.out.flush()


class _SourceError(Exception):
    pass


class _LocalSource:
    """Reads a Sabio home's log store directly."""

    def __init__(self, store: LogStore) -> None:
        self.store = store

    def streams(self, group: str, prefix: str | None) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            try:
                page = self.store.describe_log_streams(group, prefix=prefix, token=token)
            except LogResourceNotFoundError:
                raise _GroupMissing(group) from None
            names.extend(s["logStreamName"] for s in page["logStreams"])
            token = page.get("nextToken")
            if token is None:
                return names

    def page(self, group: str, stream: str, token: str | None) -> tuple[list[Any], str]:
        try:
            page = self.store.get_log_events(group, stream, start_from_head=True, token=token)
        except LogResourceNotFoundError:
            raise _GroupMissing(group) from None
        return page["events"], page["nextForwardToken"]


class _RemoteSource:
    """Asks a Sabio server's Logs API, with whatever credentials boto3 finds, or dummy ones."""

    def __init__(self, endpoint_url: str) -> None:
        import boto3

        self.endpoint_url = endpoint_url
        session = boto3.session.Session()
        options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": session.region_name or "us-east-1",
        }
        if session.get_credentials() is None:
            # botocore will not send an unsigned request; Sabio does not check the signature.
            options.update(aws_access_key_id="sabio", aws_secret_access_key="sabio")  # noqa: S106
        self.client = session.client("logs", **options)

    def streams(self, group: str, prefix: str | None) -> list[str]:
        names: list[str] = []
        request: dict[str, Any] = {"logGroupName": group}
        if prefix:
            request["logStreamNamePrefix"] = prefix
        while True:
            page = self._call("describe_log_streams", **request)
            names.extend(s["logStreamName"] for s in page.get("logStreams", []))
            token = page.get("nextToken")
            if token is None:
                return names
            request["nextToken"] = token

    def page(self, group: str, stream: str, token: str | None) -> tuple[list[Any], str]:
        request: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": True,
        }
        if token is not None:
            request["nextToken"] = token
        page = self._call("get_log_events", **request)
        return page.get("events", []), str(page["nextForwardToken"])

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response: dict[str, Any] = getattr(self.client, operation)(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise _GroupMissing(request["logGroupName"]) from None
            raise _SourceError(str(error)) from None
        except BotoCoreError as error:
            raise _SourceError(f"cannot reach Sabio at {self.endpoint_url}: {error}") from None
        return response
