"""Moving one transform job's data through its model workers.

`TransformRun.run` blocks: it runs its own event loop in the calling thread, so neither the
per-record work (splitting, filters, joins) nor reads from the store ever stall the server's
loop that serves the API and invocations.

For each input object, in order: a reader thread splits it into mini-batches (at most two
blocks ahead); each mini-batch becomes a request to the least busy worker that has a free
slot (`MaxConcurrentTransforms` per instance); responses are put back in input order and
appended to a local temporary file, which is uploaded as `<S3OutputPath>/<relative>.out` only
once every mini-batch of the object succeeded. The next object's mini-batches start while the
previous object's last ones are in flight. At most `2 * slots` mini-batches are held at once,
so memory stays near `2 * slots * MaxPayloadInMB` whatever the size of the data.

A request that fails with a 5xx, a 429, a timeout or a broken connection is retried
(`InvocationsMaxRetries`); a 4xx is not. When a mini-batch of several records still fails, it
is bisected (one attempt per half) to name the first record that fails on its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from sabio.artifacts.registry import ArtifactRegistry
from sabio.artifacts.store import ArtifactStore
from sabio.artifacts.uri import ObjectUri, parse
from sabio.jobs.channels import ChannelError, resolve_objects
from sabio.transform.joins import Processor
from sabio.transform.records import (
    LINE,
    MB,
    MULTI_RECORD,
    NONE,
    SINGLE_RECORD,
    Batch,
    Framing,
    RecordError,
    assemble,
    group,
    line_chunks,
    whole_object,
)

log = logging.getLogger("sabio.transform")

_STRATEGIES = {"MULTI_RECORD": MULTI_RECORD, "SINGLE_RECORD": SINGLE_RECORD}
_TAKE_BYTES = MB
_TAKE_ITEMS = 256
_MESSAGE_CHARS = 400


class InputError(Exception):
    """The job's input cannot be listed; the message says why."""


@dataclass(frozen=True)
class InputObject:
    uri: ObjectUri
    relative: str
    size: int
    output: ObjectUri


def relative_key(prefix: str, key: str) -> str:
    """The part of `key` that is mirrored under S3OutputPath: relative to the prefix when it
    names a folder, else to the folder the prefix is in (`in/data` -> `data.csv`)."""
    if not prefix or prefix.endswith("/"):
        base = prefix
    elif key.startswith(prefix + "/"):
        base = prefix + "/"
    else:
        base = prefix[: prefix.rfind("/") + 1]
    return key[len(base) :]


def list_inputs(
    artifacts: ArtifactRegistry, source: dict[str, Any], output_path: str
) -> tuple[ArtifactStore, list[InputObject]]:
    """Every object the job transforms, with the output object each one gets."""
    output = parse(output_path)
    uri = source["S3Uri"]
    if source.get("S3DataType") == "ManifestFile":
        try:
            store, objects = resolve_objects(artifacts, "TransformInput", source)
        except ChannelError as exc:
            raise InputError(str(exc).replace("Channel TransformInput: ", "")) from None
        found = [(o.info.uri, o.relative, o.info.size) for o in objects]
    else:
        store, prefix = artifacts.resolve(uri)
        found = [
            (o.uri, relative_key(prefix.key, o.uri.key), o.size)
            for o in store.list(prefix)
            if not o.uri.key.endswith("/")
        ]
        if not found:
            raise InputError(f"No objects found under {uri} (TransformInput S3Prefix).")
    return store, [
        InputObject(where, relative, size, output.child(relative + ".out"))
        for where, relative, size in found
    ]


@dataclass(frozen=True)
class Options:
    """What the job asked for; None where execution-parameters or defaults decide."""

    split_type: str = NONE
    batch_strategy: str | None = None
    max_payload_mb: int | None = None
    max_concurrent: int | None = None  # per instance
    content_type: str | None = None
    accept: str | None = None
    compression: str = NONE
    assemble_with: str = NONE
    timeout: float = 600.0
    max_retries: int = 3
    processor: Processor = field(default_factory=Processor)


@dataclass(frozen=True)
class Effective:
    batch_strategy: str
    max_payload_mb: int
    max_concurrent: int

    def describe(self) -> dict[str, Any]:
        return {
            "BatchStrategy": self.batch_strategy,
            "MaxPayloadInMB": self.max_payload_mb,
            "MaxConcurrentTransforms": self.max_concurrent,
        }


def _whole(value: Any, low: int, high: int | None = None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    number = int(value)
    if number < low or (high is not None and number > high):
        return None
    return number


def resolve(options: Options, parameters: Mapping[str, Any]) -> Effective:
    """Request values win, then the model's `GET /execution-parameters`, then defaults."""
    concurrent = options.max_concurrent or _whole(parameters.get("MaxConcurrentTransforms"), 1)
    if options.split_type == NONE:
        strategy = SINGLE_RECORD  # a whole object is one record
    else:
        strategy = options.batch_strategy or _STRATEGIES.get(
            str(parameters.get("BatchStrategy", "")).upper(), MULTI_RECORD
        )
    payload = options.max_payload_mb
    if payload is None:
        payload = _whole(parameters.get("MaxPayloadInMB"), 0, 100)
    return Effective(strategy, 6 if payload is None else payload, concurrent or 1)


@dataclass
class Worker:
    name: str
    socket_path: str
    alive: Callable[[], bool]
    session: aiohttp.ClientSession | None = None
    busy: int = 0
    uses: int = 0
    healthy: bool = True


class NoWorkers(Exception):
    """Every model worker has exited."""


class Pool:
    """Hands out workers: the least busy healthy one with a free slot, waiting when all are
    full. Safe only within one event loop."""

    def __init__(self, workers: list[Worker], per_worker: int) -> None:
        self.workers = workers
        self.per_worker = per_worker
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def capacity(self) -> int:
        return self.per_worker * len(self.workers)

    def _pick(self) -> Worker | None:
        best: Worker | None = None
        for worker in self.workers:
            free = worker.healthy and worker.busy < self.per_worker
            if free and (best is None or (worker.busy, worker.uses) < (best.busy, best.uses)):
                best = worker
        return best

    async def acquire(self) -> Worker:
        while True:
            if not any(w.healthy for w in self.workers):
                raise NoWorkers
            worker = self._pick()
            if worker is not None:
                worker.busy += 1
                worker.uses += 1
                return worker
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the free slot on
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def release(self, worker: Worker) -> None:
        worker.busy -= 1
        self._wake()

    def mark_dead(self, worker: Worker) -> None:
        worker.healthy = False
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


@dataclass
class Response:
    body: bytes
    content_type: str | None


@dataclass
class Failure:
    kind: str  # "status", "timeout" or "connection"
    message: str
    status: int = 0
    attempts: int = 1

    @property
    def retryable(self) -> bool:
        return self.kind != "status" or self.status >= 500 or self.status == 429

    def describe(self, timeout: float) -> str:
        if self.kind == "status":
            text = f"the model answered {self.status}: {self.message}"
        elif self.kind == "timeout":
            text = f"no answer within InvocationsTimeoutInSeconds ({timeout:g} s)"
        else:
            text = f"the connection to the model worker failed ({self.message})"
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        return text


@dataclass
class FileResult:
    source: str
    output: str
    records: int
    requests: int
    error: str | None = None


@dataclass
class RunResult:
    files: list[FileResult]
    effective: Effective | None
    stopped: bool = False
    fatal: str | None = None

    @property
    def failures(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]


@dataclass
class _File:
    index: int
    obj: InputObject
    temp: Path
    streamed: bool = False
    handle: BinaryIO | None = None
    next: int = 0
    dispatched: int = 0
    pending: dict[int, bytes] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    failed: str | None = None
    records: int = 0
    requests: int = 0

    def broken(self) -> bool:
        """Whether the object has failed (a method, so checks after an await are not
        narrowed away)."""
        return self.failed is not None

    def write(self, data: bytes) -> None:
        if self.handle is None:
            self.temp.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.temp.open("wb")
        self.handle.write(data)

    def close(self) -> None:
        if self.handle is None:
            self.temp.parent.mkdir(parents=True, exist_ok=True)
            self.temp.write_bytes(b"")
        else:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self.temp.unlink(missing_ok=True)


class _Gunzip(gzip.GzipFile):
    """A gzip stream that also closes the stream it reads from."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__(fileobj=source, mode="rb")
        self._source = source

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._source.close()


def _take(batches: Iterator[Batch]) -> list[Batch]:
    """The next few mini-batches (about 1 MB, at least one); empty at the end."""
    taken: list[Batch] = []
    size = 0
    for batch in batches:
        taken.append(batch)
        size += len(batch.body)
        if size >= _TAKE_BYTES or len(taken) >= _TAKE_ITEMS:
            break
    return taken


def _filtered(batches: Iterator[Batch], processor: Processor) -> Iterator[Batch]:
    """SplitType None: the InputFilter applies to the whole object, the one record."""
    for batch in batches:
        batch.body = processor.filter_input(batch.body)
        yield batch


def _one_line(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", "replace").split())
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "..."


class TransformRun:
    """One run of a job over its inputs; `run` blocks, `request_stop` may come from any
    thread."""

    def __init__(
        self,
        *,
        store: ArtifactStore,
        inputs: list[InputObject],
        workers: list[Worker],
        options: Options,
        work_dir: Path,
        data_log: Callable[[str], None],
    ) -> None:
        self.store = store
        self.inputs = inputs
        self.workers = workers
        self.options = options
        self.work_dir = work_dir
        self.data_log = data_log
        self.effective: Effective | None = None
        self.fatal: str | None = None
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._files: list[_File] = []
        self._results: dict[int, FileResult] = {}
        self._headers: dict[str, str] = {}
        if options.content_type:
            self._headers["Content-Type"] = options.content_type
        if options.accept:
            self._headers["Accept"] = options.accept
        self._timeout = aiohttp.ClientTimeout(total=options.timeout)

    def run(self) -> RunResult:
        with ThreadPoolExecutor(1, thread_name_prefix="transform-reader") as reader:
            self._reader = reader
            return asyncio.run(self._main())

    def request_stop(self) -> None:
        self._stop_requested = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    # The run

    async def _main(self) -> RunResult:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop_requested:
            self._stop.set()
        for worker in self.workers:
            worker.session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=worker.socket_path, limit=0),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        try:
            parameters = await self._execution_parameters()
            self.effective = resolve(self.options, parameters)
            self._pool = Pool(self.workers, self.effective.max_concurrent)
            self._window = asyncio.Semaphore(2 * self._pool.capacity)
            self._limit = self.effective.max_payload_mb * MB
            self.data_log(
                f"Transforming {len(self.inputs)} object(s) with {len(self.workers)} "
                f"instance(s): SplitType {self.options.split_type}, BatchStrategy "
                f"{self.effective.batch_strategy}, MaxPayloadInMB "
                f"{self.effective.max_payload_mb}, MaxConcurrentTransforms "
                f"{self.effective.max_concurrent} per instance"
            )
            work = asyncio.create_task(self._all())
            stopper = asyncio.create_task(self._stop.wait())
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopped = not work.done()
            for task in (work, stopper):
                task.cancel()
            await asyncio.gather(work, stopper, return_exceptions=True)
            if not stopped:
                work.result()
            files = [self._results[i] for i in sorted(self._results)]
            return RunResult(files, self.effective, stopped=stopped, fatal=self.fatal)
        finally:
            for worker in self.workers:
                if worker.session is not None:
                    await worker.session.close()

    async def _execution_parameters(self) -> dict[str, Any]:
        worker = self.workers[0]
        assert worker.session is not None
        try:
            async with worker.session.get(
                "http://worker/execution-parameters", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                if response.status != 200:
                    return {}
                data = json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    async def _all(self) -> None:
        finishing: list[asyncio.Task[None]] = []
        try:
            for index, obj in enumerate(self.inputs):
                if self.fatal is not None:
                    break
                state = _File(index, obj, self.work_dir / f"{index}.out.partial")
                self._files.append(state)
                await self._dispatch(state)
                finishing.append(asyncio.create_task(self._finish(state)))
            await asyncio.gather(*finishing)
        finally:
            for task in finishing:
                task.cancel()
            for state in self._files:
                for task in list(state.tasks):
                    task.cancel()
            pending = [t for s in self._files for t in s.tasks] + finishing
            await asyncio.gather(*pending, return_exceptions=True)
            for state in self._files:
                state.discard()

    # Reading and dispatching one object

    def _open(self, obj: InputObject) -> BinaryIO:
        stream = self.store.open_read(obj.uri)
        if self.options.compression == "Gzip":
            return _Gunzip(stream)  # type: ignore[return-value]
        return stream

    def _batches(self, stream: BinaryIO) -> Iterator[Batch]:
        assert self.effective is not None
        processor = self.options.processor
        split = self.options.split_type
        limit = self._limit
        if split == NONE:
            batches = whole_object(stream, limit, processor.per_record_output)
            return _filtered(batches, processor) if processor.filters_input else batches
        multi = self.effective.batch_strategy == MULTI_RECORD
        fast = not processor.filters_input and not processor.per_record_output
        if split == LINE and multi and limit and fast:
            return line_chunks(stream, limit)
        framing = Framing(split)
        transform = processor.filter_input if processor.filters_input else None
        records = framing.records(stream, limit, transform)
        return group(records, framing, multi, limit, processor.per_record_output)

    async def _dispatch(self, state: _File) -> None:
        """Read the object and start a request per mini-batch; returns once all are started."""
        split, processor = self.options.split_type, self.options.processor
        if state.obj.size == 0:
            return  # an empty object has an empty output; the model is not called
        if split == NONE and self._limit == 0 and not processor.per_record_output:
            # MaxPayloadInMB 0: the object streams to the worker (chunked), never in memory.
            state.streamed = True
            await self._window.acquire()
            self._start(state, Batch(b"", 1, 1, 1, "object"))
            return
        loop = asyncio.get_running_loop()
        try:
            stream = await loop.run_in_executor(self._reader, self._open, state.obj)
        except Exception as exc:
            self._fail(state, f"reading it failed: {exc}")
            return
        queue: asyncio.Queue[list[Batch] | BaseException | None] = asyncio.Queue(maxsize=2)
        reader = asyncio.create_task(self._read(self._batches(stream), queue))
        try:
            while state.failed is None and self.fatal is None:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, RecordError):
                    where = "" if item.location is None else f"{self._unit()} {item.location}: "
                    self._fail(state, where + item.message)
                    break
                if isinstance(item, BaseException):
                    self._fail(state, f"reading it failed: {type(item).__name__}: {item}")
                    break
                for batch in item:
                    await self._window.acquire()
                    if state.broken() or self.fatal is not None:
                        self._window.release()
                        break
                    self._start(state, batch)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            # The reader thread runs one thing at a time, so this waits for any read in flight.
            await loop.run_in_executor(self._reader, stream.close)

    def _unit(self) -> str:
        split = self.options.split_type
        return "line" if split == LINE else "record" if split != NONE else "object"

    async def _read(
        self, batches: Iterator[Batch], queue: asyncio.Queue[list[Batch] | BaseException | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                block = await loop.run_in_executor(self._reader, _take, batches)
                if not block:
                    await queue.put(None)
                    return
                await queue.put(block)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(exc)

    def _start(self, state: _File, batch: Batch) -> None:
        task = asyncio.create_task(self._run_batch(state, state.dispatched, batch))
        state.dispatched += 1
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    # One mini-batch

    async def _run_batch(self, state: _File, seq: int, batch: Batch) -> None:
        placed = False
        try:
            outcome = await self._invoke(state, batch, attempts=1 + self.options.max_retries)
            if state.failed is not None:
                return
            if isinstance(outcome, Failure):
                where, failure = await self._locate(state, batch, outcome)
                self._fail(state, f"{where}: {failure.describe(self.options.timeout)}")
                return
            output = self._output(batch, outcome)
            if state.broken():
                return
            state.pending[seq] = output
            placed = True
            state.records += batch.count
            state.requests += 1
            self._flush(state)
        except RecordError as exc:
            if exc.index is not None:
                where = f"{batch.unit} {batch.location(exc.index)}"
            else:
                where = batch.describe()
            self._fail(state, f"{where}: {exc.message}")
        except NoWorkers:
            self.fatal = self.fatal or "every model worker exited"
            self._fail(state, f"{batch.describe()}: {self.fatal}")
        except Exception as exc:
            log.exception("transforming %s of %s failed", batch.describe(), state.obj.uri)
            self._fail(state, f"{batch.describe()}: {type(exc).__name__}: {exc}")
        finally:
            if not placed:
                self._window.release()

    def _output(self, batch: Batch, response: Response) -> bytes:
        processor = self.options.processor
        if processor.per_record_output:
            assert batch.inputs is not None
            return processor.outputs(batch.inputs, response.body, response.content_type)
        return assemble(response.body, self.options.assemble_with)

    async def _invoke(self, state: _File, batch: Batch, attempts: int) -> Response | Failure:
        failure: Failure | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
            result = await self._invoke_once(state, batch.body)
            if isinstance(result, Response):
                return result
            failure = result
            failure.attempts = attempt + 1
            if not failure.retryable:
                break
        assert failure is not None
        return failure

    async def _invoke_once(self, state: _File, body: bytes) -> Response | Failure:
        worker = await self._pool.acquire()
        try:
            assert worker.session is not None
            # BytesIO, not bytes: aiohttp sends it in chunks (and warns about large bytes).
            data: io.BytesIO | AsyncIterator[bytes] = (
                self._stream_body(state.obj) if state.streamed else io.BytesIO(body)
            )
            async with worker.session.post(
                "http://worker/invocations",
                data=data,
                headers=self._headers,
                timeout=self._timeout,
            ) as response:
                payload = await response.read()
                if response.status < 400:
                    return Response(payload, response.headers.get("Content-Type"))
                return Failure("status", _one_line(payload), status=response.status)
        except TimeoutError:
            return Failure("timeout", "")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            if await self._exited(worker):
                log.warning("model worker %s exited during a transform", worker.name)
                self._pool.mark_dead(worker)
            return Failure("connection", f"{worker.name}: {type(exc).__name__}")
        finally:
            self._pool.release(worker)

    @staticmethod
    async def _exited(worker: Worker) -> bool:
        """Whether a worker whose connection broke has exited (its exit may take a moment to
        be seen after the socket closes)."""
        for _ in range(10):
            if not worker.alive():
                return True
            await asyncio.sleep(0.02)
        return False

    async def _stream_body(self, obj: InputObject) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        stream = await loop.run_in_executor(None, self._open, obj)
        try:
            while chunk := await loop.run_in_executor(None, stream.read, MB):
                yield chunk
        finally:
            await loop.run_in_executor(None, stream.close)

    async def _locate(self, state: _File, batch: Batch, failure: Failure) -> tuple[str, Failure]:
        """Which record of a failed mini-batch fails on its own: bisect it, one attempt per
        half. Falls back to the mini-batch's range when no half fails alone."""
        if batch.count < 2 or failure.kind != "status":
            return batch.describe(), failure
        framing = Framing(self.options.split_type)
        pieces = framing.pieces(batch.body)
        if len(pieces) != batch.count:
            return batch.describe(), failure
        low, high = 0, len(pieces)
        found = failure
        while high - low > 1:
            middle = (low + high) // 2
            first = await self._invoke_once(state, framing.join(pieces[low:middle]))
            if isinstance(first, Failure):
                high, found = middle, first
                continue
            second = await self._invoke_once(state, framing.join(pieces[middle:high]))
            if isinstance(second, Failure):
                low, found = middle, second
                continue
            return batch.describe(), failure
        return f"{batch.unit} {batch.location(low)}", found

    # Output, in input order

    def _flush(self, state: _File) -> None:
        while state.next in state.pending:
            data = state.pending.pop(state.next)
            state.next += 1
            try:
                state.write(data)
            finally:
                self._window.release()

    def _fail(self, state: _File, reason: str) -> None:
        if state.failed is not None:
            return
        state.failed = reason
        for _ in state.pending:
            self._window.release()
        state.pending.clear()
        current = asyncio.current_task()
        for task in list(state.tasks):
            if task is not current:
                task.cancel()
        state.discard()

    async def _finish(self, state: _File) -> None:
        """Wait for every mini-batch of the object, then publish its output (or not)."""
        while state.tasks:
            await asyncio.gather(*list(state.tasks), return_exceptions=True)
        obj = state.obj
        if state.failed is None:
            loop = asyncio.get_running_loop()
            try:
                state.close()
                await loop.run_in_executor(None, self.store.upload_file, state.temp, obj.output)
            except Exception as exc:
                state.failed = f"writing the output to {obj.output} failed: {exc}"
            finally:
                state.discard()
        result = FileResult(str(obj.uri), str(obj.output), state.records, state.requests)
        if state.failed is not None:
            result.error = f"{obj.uri}: {state.failed}"
            self.data_log(f"{obj.uri}: failed: {state.failed}. No output was written for it.")
        else:
            self.data_log(
                f"{obj.uri}: {state.records} record(s) in {state.requests} request(s) -> "
                f"{obj.output}"
            )
        self._results[state.index] = result
