"""What the emulator saw: every request on both listeners, for tests to assert on.

Records keep digests of file parts rather than their bytes, so a benchmark's thousands of requests
do not hold their bodies in memory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FilePart:
    """A file part of a create call, kept as a digest so records never hold large bodies."""

    name: str
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass
class RecordedRequest:
    """One request as the emulator saw it. Header names are lower-cased."""

    listener: str
    method: str
    path: str
    headers: dict[str, str]
    form: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)
    #: The status answered, or ``None`` while answering or when the connection was dropped.
    status: int | None = None
    #: Arrival time (``time.time()``), to check polling intervals.
    at: float = 0.0


class Recorder:
    """Every request on both listeners, in arrival order, for tests to assert on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []

    def add(self, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append(record)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
