"""The transform worker pool: requests wait for a dead worker's replacement, and a job whose
workers keep dying runs out of replacements instead of looping."""

from __future__ import annotations

import asyncio

import pytest

from sabio.transform.pool import NoWorkers, Pool, Worker


def worker(name: str) -> Worker:
    return Worker(name, f"/nonexistent/{name}.sock", lambda: None)


def test_requests_wait_for_the_replacement_until_none_are_left() -> None:
    async def scenario() -> None:
        started: list[Worker] = []

        async def replace(slot: int) -> Worker:
            await asyncio.sleep(0.05)  # a worker takes a while to start
            started.append(worker(f"algo-{slot + 1}"))
            return started[-1]

        first = worker("algo-1")
        first.open()
        pool = Pool([first], 1, replace, replacements=1)
        taken = await pool.acquire()
        waiting = asyncio.create_task(pool.acquire())  # the only slot is busy
        await asyncio.sleep(0)
        pool.release(taken)
        pool.mark_dead(taken)
        assert await waiting is started[0]
        assert pool.workers == started and started[0].session is not None
        pool.release(started[0])
        pool.mark_dead(started[0])  # no replacement left
        with pytest.raises(NoWorkers):
            await pool.acquire()
        await pool.close()

    asyncio.run(scenario())


def test_a_replacement_that_fails_to_start_ends_the_wait() -> None:
    async def scenario() -> None:
        async def replace(slot: int) -> Worker:
            raise RuntimeError("the model does not load")

        first = worker("algo-1")
        first.open()
        pool = Pool([first], 2, replace, replacements=3)
        pool.mark_dead(first)
        with pytest.raises(NoWorkers):
            await pool.acquire()
        assert pool.replace_error == "replacing algo-1 failed: the model does not load"
        await pool.close()

    asyncio.run(scenario())
