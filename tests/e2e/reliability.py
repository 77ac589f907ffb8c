"""What the fault suites record for ``docs/RELIABILITY.md``: one row per case, asserted by that case.

A suite declares its section and the cases it must fill, and each case calls ``record`` once all
its assertions passed. Nothing is written during a test run: with ``VEO_RELIABILITY_RECORD=FILE`` in
the environment, the rows are saved to ``FILE`` at the end of the session, and
``scripts/write_reliability_doc.py`` (which runs the suites that way) renders the document.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: The environment variable naming the JSON file the session's rows go to.
RECORD_ENV = "VEO_RELIABILITY_RECORD"


@dataclass(frozen=True)
class Row:
    case: str
    via: str
    outcome: str
    posts: str
    jobs: str
    left: str


@dataclass
class Section:
    """One table of the document: its title, what it runs against, and its cases in order."""

    title: str
    against: str
    cases: list[str]
    rows: dict[str, Row] = field(default_factory=dict)

    def record(self, case: str, via: str, outcome: str, posts: str | int, jobs: str | int, left: str) -> None:
        """Keep a case's row; called by a case once all its assertions passed."""
        assert case in self.cases, f"{case!r} is not one of the section's cases"
        self.rows[case] = Row(case, via, outcome, str(posts), str(jobs), left)


SECTIONS: list[Section] = []


def section(title: str, against: str, cases: list[str]) -> Section:
    """Declare a suite's table; its module keeps the returned section and records into it."""
    declared = Section(title, against, cases)
    SECTIONS.append(declared)
    return declared


def save_if_asked() -> None:
    """Write every declared section and its rows to the file ``VEO_RELIABILITY_RECORD`` names, if set."""
    target = os.environ.get(RECORD_ENV)
    if target:
        payload = [{**asdict(s), "rows": [asdict(r) for r in s.rows.values()]} for s in SECTIONS]
        Path(target).write_text(json.dumps(payload, ensure_ascii=False, indent=1))
