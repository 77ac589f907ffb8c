"""When a task's arguments are refused, and how provider errors end a task.

An argument that is wrong when the task is defined stops the DAG file from loading; one that is
wrong once rendered fails the task without retry. An error that a retry cannot mend (bad input, a
refused key, a failed generation, a create request whose fate is unknown) fails the task without
retrying; transient ones let Airflow's retries work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow_provider_veo.api import VeoError, VeoInputError
from airflow_provider_veo.compat import AirflowFailException

__all__ = ["checked_when_defined", "is_unrendered", "task_outcomes"]


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
