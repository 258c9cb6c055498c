"""One input object in flight: its mini-batch requests, and its output put back in input order
in a local temporary file until every mini-batch has succeeded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sabio.transform.inputs import InputObject


@dataclass
class InFlight:
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
