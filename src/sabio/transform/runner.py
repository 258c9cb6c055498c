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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

from sabio.artifacts.store import ArtifactStore
from sabio.transform.in_flight import InFlight
from sabio.transform.inputs import InputObject
from sabio.transform.invoker import Failure, Invoker, Response
from sabio.transform.options import Effective, Options, resolve
from sabio.transform.pool import NoWorkers, Pool, Replace, Worker
from sabio.transform.progress import Progress
from sabio.transform.reading import batches_of, open_input, take
from sabio.transform.records import LINE, MB, NONE, Batch, RecordError, assemble
from sabio.transform.results import FileResult, RunResult

log = logging.getLogger("sabio.transform")


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
        replace: Replace | None = None,
        replacements: int = 0,
        progress: Progress | None = None,
        stamp: Callable[[bytes, str | None], bytes] | None = None,
    ) -> None:
        self.store = store
        self.replace = replace
        self.replacements = replacements
        self.progress = progress
        self.stamp = stamp
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
        self._files: list[InFlight] = []
        self._results: dict[int, FileResult] = {}

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
            worker.open()
        self._pool = Pool(self.workers, 1, self.replace, self.replacements)
        try:
            parameters = await self._execution_parameters()
            self.effective = resolve(self.options, parameters)
            self._pool.per_worker = self.effective.max_concurrent
            self._invoker = Invoker(self._pool, self.store, self.options)
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
            await self._pool.close()

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
                if await self._kept(index, obj):
                    continue
                state = InFlight(index, obj, self.work_dir / f"{index}.out.partial")
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

    async def _dispatch(self, state: InFlight) -> None:
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
            stream = await loop.run_in_executor(
                self._reader, open_input, self.store, state.obj, self.options.compression
            )
        except Exception as exc:
            self._fail(state, f"reading it failed: {exc}")
            return
        queue: asyncio.Queue[list[Batch] | BaseException | None] = asyncio.Queue(maxsize=2)
        assert self.effective is not None
        batches = batches_of(stream, self.options, self.effective, self._limit)
        reader = asyncio.create_task(self._read(batches, queue))
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
                block = await loop.run_in_executor(self._reader, take, batches)
                if not block:
                    await queue.put(None)
                    return
                await queue.put(block)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(exc)

    def _start(self, state: InFlight, batch: Batch) -> None:
        task = asyncio.create_task(self._run_batch(state, state.dispatched, batch))
        state.dispatched += 1
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    # One mini-batch

    async def _run_batch(self, state: InFlight, seq: int, batch: Batch) -> None:
        placed = False
        try:
            streamed = state.obj if state.streamed else None
            attempts = 1 + self.options.max_retries
            outcome = await self._invoker.invoke(batch.body, streamed, attempts)
            if state.failed is not None:
                return
            if isinstance(outcome, Failure):
                where, failure = await self._invoker.locate(batch, outcome)
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
            if self.fatal is None:
                error = self._pool.replace_error
                self.fatal = "every model worker exited" + (f" ({error})" if error else "")
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
            output = processor.outputs(batch.inputs, response.body, response.content_type)
        else:
            output = assemble(response.body, self.options.assemble_with)
        return output if self.stamp is None else self.stamp(output, response.content_type)

    # Output, in input order

    def _flush(self, state: InFlight) -> None:
        while state.next in state.pending:
            data = state.pending.pop(state.next)
            state.next += 1
            try:
                state.write(data)
            finally:
                self._window.release()

    def _fail(self, state: InFlight, reason: str) -> None:
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

    async def _kept(self, index: int, obj: InputObject) -> bool:
        """Whether the object's whole output was written before the server restarted."""
        if self.progress is None or not self.progress.done:
            return False
        loop = asyncio.get_running_loop()
        try:
            kept = await loop.run_in_executor(None, self.progress.kept, self.store, obj)
        except Exception:
            log.exception("checking the earlier output of %s failed", obj.uri)
            return False
        if kept is None:
            return False
        self._results[index] = kept
        self.data_log(f"{obj.uri}: already transformed before the restart -> {obj.output}")
        return True

    async def _finish(self, state: InFlight) -> None:
        """Wait for every mini-batch of the object, then publish its output (or not)."""
        while state.tasks:
            await asyncio.gather(*list(state.tasks), return_exceptions=True)
        obj = state.obj
        loop = asyncio.get_running_loop()
        if state.failed is None:
            try:
                state.close()
                await loop.run_in_executor(None, self.store.upload_file, state.temp, obj.output)
            except Exception as exc:
                state.failed = f"writing the output to {obj.output} failed: {exc}"
            finally:
                state.discard()
        result = FileResult(str(obj.uri), str(obj.output), state.records, state.requests)
        if state.failed is None and self.progress is not None:
            try:
                await loop.run_in_executor(None, self.progress.record, self.store, obj, result)
            except Exception:
                log.exception("recording that %s is transformed failed", obj.uri)
        if state.failed is not None:
            result.error = f"{obj.uri}: {state.failed}"
            self.data_log(f"{obj.uri}: failed: {state.failed}. No output was written for it.")
        else:
            self.data_log(
                f"{obj.uri}: {state.records} record(s) in {state.requests} request(s) -> "
                f"{obj.output}"
            )
        self._results[state.index] = result
