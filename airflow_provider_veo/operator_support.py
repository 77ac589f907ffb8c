"""What the operators and the sensor share with Airflow, across Airflow 3.1 to 3.3.

The hook accessor, the ``default_deferrable`` setting, and how provider errors become task
outcomes: an error that a retry cannot mend (bad input, a refused key, a failed generation, a
create request whose fate is unknown) fails the task without retrying; transient ones let
Airflow's retries work.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from airflow_provider_veo.api import VeoError, VeoInputError, arguments

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
    "checked_when_defined",
    "default_deferrable",
    "is_unrendered",
    "min_poll_interval",
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


def min_poll_interval() -> float:
    """The shortest ``poll_interval`` this deployment allows: ``[veo] min_poll_interval``, 1 s by default.

    Lowered only where jobs finish in a fraction of a second, as against the emulator; never below 0.01 s.
    """
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf
    floor = conf.getfloat("veo", "min_poll_interval", fallback=arguments.MIN_POLL_INTERVAL)
    return max(0.01, floor) if math.isfinite(floor) else arguments.MIN_POLL_INTERVAL


def is_unrendered(value: object) -> bool:
    """Whether a templated argument is still a template when the task is defined: Jinja text, an
    ``XComArg`` (``task.output``), or a list holding one. Its check waits until it is rendered."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, (list, tuple)):
        return any(is_unrendered(item) for item in value)
    return hasattr(value, "iter_references") and hasattr(value, "resolve")


@contextmanager
def checked_when_defined(operator: object) -> Iterator[None]:
    """Where a task's arguments are checked when it is defined, so a DAG file with a wrong one does not load.

    A mapped task is defined again in the worker with its mapped values, where an error would be
    retried like any error of starting a task: there, the refusal is kept for :func:`task_outcomes`,
    which raises it when the task runs, without retry.
    """
    try:
        yield
    except VeoInputError as exc:
        if not getattr(operator, "_BaseOperator__from_mapped", False):
            raise
        setattr(operator, _REFUSAL, exc)


_REFUSAL = "_veo_refused_when_defined"


def parse_bool(field_name: str, value: object) -> bool:
    """A switch that may arrive templated, as the text Jinja renders (``"False"``), or as a bool."""
    return arguments.switch(field_name, value)


@contextmanager
def task_outcomes(operator: object = None) -> Iterator[None]:
    """Re-raise errors that retrying cannot mend as :class:`AirflowFailException`; first, the refusal of
    an argument of ``operator`` that :func:`checked_when_defined` kept.

    With the provider error's own traceback and not chained to it, so the task log shows the error once.
    """
    try:
        if (refusal := getattr(operator, _REFUSAL, None)) is not None:
            raise refusal
        yield
    except VeoError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)).with_traceback(exc.__traceback__) from None
