"""Which input objects of a job already have their whole output, so that a job cut off by a
server restart does not transform them again.

An entry is written once an object's output has been uploaded; it names the input object and
the output object as they were then (size and ETag). On resume, an object is kept only when
both are still exactly that object: anything else is transformed again from its start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sabio.artifacts.store import ArtifactStore, ObjectInfo
from sabio.transform.inputs import InputObject
from sabio.transform.results import FileResult


def _identity(info: ObjectInfo | None) -> list[Any] | None:
    return None if info is None else [info.size, info.etag]


class Progress:
    """Completed objects, keyed by input URI; `save` persists the whole map (blocking)."""

    def __init__(
        self, done: dict[str, Any], save: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.done = dict(done)
        self.save = save
        self._lock = threading.Lock()  # objects may finish at once, each in its own thread

    def kept(self, store: ArtifactStore, obj: InputObject) -> FileResult | None:
        """The object's result from an earlier run, if its output is still the one written
        then (blocking)."""
        entry = self.done.get(str(obj.uri))
        if not isinstance(entry, dict) or entry.get("Output") != str(obj.output):
            return None
        if entry.get("Input") != _identity(store.stat(obj.uri)):
            return None
        if entry.get("OutputObject") != _identity(store.stat(obj.output)):
            return None
        return FileResult(
            str(obj.uri), str(obj.output), int(entry["Records"]), int(entry["Requests"])
        )

    def record(self, store: ArtifactStore, obj: InputObject, result: FileResult) -> None:
        """Note that the object's output is complete (blocking)."""
        entry = {
            "Output": str(obj.output),
            "Input": _identity(store.stat(obj.uri)),
            "OutputObject": _identity(store.stat(obj.output)),
            "Records": result.records,
            "Requests": result.requests,
        }
        with self._lock:
            self.done[str(obj.uri)] = entry
            if self.save is not None:
                self.save(dict(self.done))
