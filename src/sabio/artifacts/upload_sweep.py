"""Aborting abandoned multipart uploads, as an S3 lifecycle rule with
`AbortIncompleteMultipartUpload` does: a client that dies mid-upload leaves parts on disk that
nothing would ever free."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sabio.artifacts.store import ArtifactStore
from sabio.reconcile import ReconcileLoop

log = logging.getLogger("sabio.artifacts")


class UploadSweeper(ReconcileLoop):
    """Every `interval` seconds, aborts the uploads initiated more than `max_age` seconds ago.

    The store is looked up on each pass (it is built on first use)."""

    def __init__(self, store: Callable[[], ArtifactStore], max_age: float, interval: float) -> None:
        super().__init__(interval)
        self._store = store
        self.max_age = max_age

    async def reconcile(self) -> None:
        cutoff = time.time() - self.max_age
        aborted = await asyncio.to_thread(
            lambda: self._store().abort_uploads_started_before(cutoff)
        )
        if aborted:
            log.info(
                "aborted %d multipart upload(s) started over %.0f s ago", aborted, self.max_age
            )

    async def stop(self) -> None:
        await self.stop_loop()
