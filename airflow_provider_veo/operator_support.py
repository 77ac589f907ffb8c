"""What the operators and the sensor share with Airflow, across Airflow 3.1 to 3.3.

The hook accessor, the ``default_deferrable`` setting, and how provider errors become task
outcomes: an error that a retry cannot mend (bad input, a refused key, a failed generation, a
create request whose fate is unknown) fails the task without retrying; transient ones let
Airflow's retries work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from airflow_provider_veo.api import VeoError, VeoInputError

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )

if TYPE_CHECKING:
    from airflow_provider_veo.hooks.veo import VeoHook

__all__ = [
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "VeoHookMixin",
    "default_deferrable",
    "parse_bool",
    "task_outcomes",
]


class VeoHookMixin:
    """The one hook accessor of the operators and the sensor.

    The hook module (requests, httpx) is imported on first use, in the worker, so that parsing a
    DAG file that uses these operators stays cheap.
    """

    veo_conn_id: str

    @cached_property
    def hook(self) -> VeoHook:
        from airflow_provider_veo.hooks.veo import VeoHook

        return VeoHook(veo_conn_id=self.veo_conn_id)


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when a task is defined, as Airflow's own operators do."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def parse_bool(field_name: str, value: object) -> bool:
    """A switch that may arrive templated, as the text Jinja renders (``"False"``), or as a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "none", ""):
        return False
    raise VeoInputError(field_name, f"expected true or false, got {value!r}")


@contextmanager
def task_outcomes() -> Iterator[None]:
    """Re-raise errors that retrying cannot mend as :class:`AirflowFailException`."""
    try:
        yield
    except VeoError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc
