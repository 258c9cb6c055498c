"""Reading request bodies with a size cap, without holding an oversized body in memory."""

from __future__ import annotations

from starlette.requests import Request

from sabio.errors import SabioError

# An oversized body is read and thrown away up to this much, so the client sees the error
# instead of a reset connection; past it the connection is dropped.
_DRAIN_LIMIT = 256 * 1024 * 1024


async def read_capped(request: Request, limit: int, error: SabioError) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await _drain(request, int(declared))
        raise error
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.clear()
            await _drain(request, size)
            raise error
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request: Request, already: int) -> None:
    seen = already if request.headers.get("content-length") is None else 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > _DRAIN_LIMIT:
            break
