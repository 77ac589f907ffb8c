"""Real multi-process Airflow deployments on loopback, in two groups, one deployment at a time.

* ``sqlite/``: SQLite + LocalExecutor, the development set-up (marker ``deployment``);
* ``celery/``: PostgreSQL + Redis + CeleryExecutor with two workers and two triggerers, the
  production set-up (markers ``deployment`` and ``celery``).
* ``videos/``: an api-server and a DAG processor around one run made by ``airflow dags test``,
  for the Videos tabs in chromium (marker ``deployment``; Airflow 3.1+).

Each group starts its deployment in a package-scoped fixture, so the first is stopped before the
second starts. What they share lives in :mod:`.stack` (processes, REST client, checks),
:mod:`.services` (PostgreSQL, Redis) and :mod:`.dag_files` (the test DAGs).

``pytest -m "not deployment"`` leaves them all out; ``-m celery`` runs only the Celery group;
``-m "deployment and not celery"`` the SQLite one and the Videos view's. The first two need
Airflow 3.3+.
"""

from __future__ import annotations

from typing import Any

import pytest

from .stack import ACTIVE


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deployment: runs against a real multi-process Airflow deployment on loopback "
        "(Airflow 3.3+, minutes; deselect with -m 'not deployment')",
    )
    config.addinivalue_line(
        "markers",
        "celery: the production-shaped deployment: PostgreSQL, Redis, CeleryExecutor with two workers "
        "and two triggerers (Debian's postgresql and redis-server; select with -m celery)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and ACTIVE:
        dep = ACTIVE[-1]
        dep.failed = True
        report.sections.append(("Airflow process logs (tails)", dep.log_tails()))
        seen = dep.emulator.requests
        last = [(r.method, r.path, r.status) for r in seen[-10:]]
        report.sections.append(("CometAPI emulator", f"{len(seen)} requests, the last ones: {last}"))
    return report
