"""What the emulator saw: every request on both listeners, for tests to assert on.

Records keep digests of file parts rather than their bytes, so a benchmark's thousands of requests
do not hold their bodies in memory. Listeners (:meth:`Recorder.subscribe`) hear of each request once
it has been answered; :class:`JsonLinesFile` and :func:`describe` are the two the command line uses
(``--record FILE`` and ``--verbose``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

#: Characters of the prompt that :func:`describe` shows.
PROMPT_START_CHARS = 60


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

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data: the same fields, ``form`` as ``[name, value]`` pairs."""
        data = asdict(self)
        data["form"] = [list(pair) for pair in self.form]
        return data


Listener = Callable[[RecordedRequest], None]


class Recorder:
    """Every request on both listeners, in arrival order, for tests to assert on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._listeners: list[Listener] = []

    def add(self, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append(record)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with each request once it is answered or dropped, on its serving thread."""
        with self._lock:
            self._listeners.append(listener)

    def finished(self, record: RecordedRequest) -> None:
        """The server is done with ``record``: its status is final (``None`` for a dropped connection)."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(record)


class JsonLinesFile:
    """A listener writing each request as one JSON object per line, flushed line by line.

    The file is truncated when opened, so it holds one emulator run; lines come in the order the
    requests finished, each with its arrival time ``at``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[str] = self.path.open("w", encoding="utf-8")

    def __call__(self, record: RecordedRequest) -> None:
        line = json.dumps(record.to_dict(), ensure_ascii=False)
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def describe(record: RecordedRequest) -> str:
    """One line for a person watching: time, listener, method, path, status, and what a POST asked."""
    clock = time.strftime("%H:%M:%S", time.localtime(record.at))
    status = "dropped" if record.status is None else str(record.status)
    line = f"{clock} {record.listener} {record.method} {record.path} {status}"
    if record.method != "POST":
        return line
    form = dict(record.form)
    prompt = " ".join(form.get("prompt", "").split())
    if len(prompt) > PROMPT_START_CHARS:
        prompt = prompt[: PROMPT_START_CHARS - 1] + "…"
    quoted = json.dumps(prompt, ensure_ascii=False)
    line += f" model={form.get('model', '-')} seconds={form.get('seconds', '-')} prompt={quoted}"
    if record.files:
        line += f" references={len(record.files)}"
    return line
