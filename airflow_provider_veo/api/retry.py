"""When a request is tried again, as a flow without I/O that the sync and the async client both drive.

Kept apart from the clients so that the rule for a paid POST (never resent when a job may exist)
is written once and tested without a network.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Generator
from dataclasses import dataclass

from airflow_provider_veo.api.errors import (
    VeoError,
    VeoModelUnavailableError,
    VeoSubmissionUncertainError,
    VeoTransientError,
)

#: The gateway's code when no channel serves a model: after every attempt, the model is unavailable.
_NO_CHANNEL = "model_not_found"


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a request again; shared by the sync and async clients.

    A GET is retried on any transient error. A POST creates a paid job, so it is retried only when
    the server provably created nothing: a refused connection, a 429, or a 5xx answered with the
    API's own JSON error. Never after no answer or a proxy's page, when a job may exist.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay_before_retry(self, attempt: int, error: VeoError, *, method: str) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        if not isinstance(error, VeoTransientError) or attempt >= self.max_attempts:
            return None
        if method.upper() == "POST" and error.job_may_exist:
            return None
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay * 5) + backoff * 0.1
        return backoff

    def final_error(self, error: VeoError, *, method: str) -> VeoError:
        """The error to raise once retrying is over.

        A create still answered ``model_not_found`` after every attempt is not an outage to retry in
        Airflow: no channel serves the model (retired, or not on this account), and nothing was made.
        """
        if method.upper() == "POST" and isinstance(error, VeoTransientError) and error.code == _NO_CHANNEL:
            return VeoModelUnavailableError(
                f"{error} No CometAPI channel served the model through {self.max_attempts} attempts: "
                "it is unavailable (retired upstream, or not enabled for this account). No job was "
                "created; choose another model or ask CometAPI's support.",
                status_code=error.status_code,
                code=error.code,
                request_id=error.request_id,
            )
        if method.upper() == "POST" and isinstance(error, VeoTransientError) and error.job_may_exist:
            return VeoSubmissionUncertainError(
                f"Creating the video failed after CometAPI may have received the request ({error}). "
                "A paid job may exist. It is not sent again, because that could start and bill a "
                "second job.",
                status_code=error.status_code,
                code=error.code,
                request_id=error.request_id,
            )
        return error


@dataclass(frozen=True)
class Send:
    """A step of :func:`request_flow`: send the request (attempt ``attempt``)."""

    attempt: int


@dataclass(frozen=True)
class Sleep:
    """A step of :func:`request_flow`: the request failed with ``error``; wait, then go on."""

    seconds: float
    error: VeoError
    next_attempt: int


def request_flow(policy: RetryPolicy, method: str) -> Generator[Send | Sleep, VeoError | None, None]:
    """One request's retries, free of I/O, driven by the sync and the async client alike.

    As httpx drives its auth flows: the flow yields :class:`Send`; the driver sends the request and
    sends back ``None`` on success (the flow ends) or the error; the flow then yields a
    :class:`Sleep` (advance it with ``next()`` once slept) or raises the error to give up with.
    """
    for attempt in itertools.count(1):
        error = yield Send(attempt)
        if error is None:
            return
        delay = policy.delay_before_retry(attempt, error, method=method)
        if delay is None:
            raise policy.final_error(error, method=method)
        yield Sleep(delay, error, attempt + 1)
