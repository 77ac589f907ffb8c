"""How provider errors become Airflow task outcomes, across Airflow 3.1 to 3.3.

An error that a retry cannot mend (bad input, a refused key, a failed generation, a create request
whose fate is unknown) fails the task without retrying; transient ones let Airflow's retries work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow_provider_veo.api import VeoError

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException, AirflowSensorTimeout  # type: ignore[no-redef]

__all__ = ["AirflowFailException", "AirflowSensorTimeout", "default_deferrable", "task_outcomes"]


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when a task is defined, as Airflow's own operators do."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf
    return conf.getboolean("operators", "default_deferrable", fallback=False)


@contextmanager
def task_outcomes() -> Iterator[None]:
    """Re-raise errors that retrying cannot mend as :class:`AirflowFailException`."""
    try:
        yield
    except VeoError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc
