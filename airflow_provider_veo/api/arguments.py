"""The operators' and the sensor's own arguments, checked before anything is sent.

The request's fields are checked by :class:`~airflow_provider_veo.api.VideoRequest`; these are the
rest: how long to wait, how often to poll, what a retry may do, where the video goes. Each check
returns the value as used, or raises :class:`VeoInputError` naming the argument and what is
allowed, so a typo fails the task before it pays, never as a raw ``TypeError`` or ``OverflowError``
after.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta

from airflow_provider_veo.api.errors import VeoInputError
from airflow_provider_veo.api.jobs import DEFAULT_TIMEOUT
from airflow_provider_veo.api.models import describe

#: The shortest time between two status reads: a video takes minutes, and each read is a request
#: against the account's rate limit. A deployment may lower it for an emulator (``[veo] min_poll_interval``).
MIN_POLL_INTERVAL = 1.0
#: The longest time between two status reads.
MAX_POLL_INTERVAL = 3600.0
#: The longest wait for one job: a video that is not done in a week will not be.
MAX_TIMEOUT = 7 * 24 * 3600.0
#: The longest window in which "not found" is taken as a job the gateway has not stored yet.
MAX_VISIBILITY_GRACE = 3600.0
#: The most jobs a task may be allowed to pay for across its tries.
MAX_SUBMISSIONS = 100

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off", "none", ""})


def seconds(
    name: str, value: object, *, minimum: float, maximum: float, above_minimum: bool = False
) -> float:
    """A number of seconds (an int, a float or a ``timedelta``) within ``[minimum, maximum]``
    (``(minimum, maximum]`` when ``above_minimum``); text, ``NaN`` and infinities are refused."""
    bounds = f"{'more than' if above_minimum else 'at least'} {minimum:g} and at most {maximum:g} seconds"
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value) if not isinstance(value, int) or value.bit_length() < 64 else math.inf
    else:
        raise VeoInputError(name, f"expected a number of seconds ({bounds}), got {describe(value)}")
    too_low = number <= minimum if above_minimum else number < minimum
    if not math.isfinite(number) or too_low or number > maximum:
        raise VeoInputError(name, f"expected {bounds}, got {describe(value)}")
    return number


def poll_interval(name: str, value: object, *, floor: float = MIN_POLL_INTERVAL) -> float:
    """Seconds between status reads: from ``floor`` (1 s unless the deployment lowered it) to an hour."""
    return seconds(name, value, minimum=floor, maximum=MAX_POLL_INTERVAL)


def timeout(name: str, value: object) -> float:
    """Seconds to wait for a job: ``None`` is the default (an hour), else more than 0 and at most a week."""
    if value is None:
        return DEFAULT_TIMEOUT
    return seconds(name, value, minimum=0, maximum=MAX_TIMEOUT, above_minimum=True)


def visibility_grace(value: object) -> float:
    """Seconds after a create during which "not found" means "not stored yet": 0 to an hour."""
    return seconds("visibility_grace", value, minimum=0, maximum=MAX_VISIBILITY_GRACE)


def max_submissions(value: object) -> int | None:
    """The cap on jobs paid for across a task's tries: ``None`` (no cap) or a whole number from 1."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SUBMISSIONS:
        return value
    raise VeoInputError(
        "max_submissions",
        f"expected None (no cap) or a whole number from 1 to {MAX_SUBMISSIONS}, got {describe(value)}",
    )


def switch(name: str, value: object) -> bool:
    """A true/false argument, as a bool or as the text a template renders (``"False"``)."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise VeoInputError(name, f"expected true or false, got {describe(value)}")


def destination(value: object) -> str | os.PathLike[str]:
    """Where the video goes: a local path or an object storage URI, as text or ``os.PathLike``."""
    if isinstance(value, os.PathLike):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if "\x00" in text:
            raise VeoInputError("destination", "a path cannot contain a NUL character")
        return value
    raise VeoInputError(
        "destination",
        "expected a local path or an object storage URI (a non-empty str or an os.PathLike such as "
        f"pathlib.Path or ObjectStoragePath), got {describe(value)}",
    )


def video_id(name: str, value: object) -> str:
    """A job's id as the API gave it: non-empty text."""
    if isinstance(value, str) and value.strip():
        return value
    raise VeoInputError(name, f"expected the id of a Veo video (non-empty text), got {describe(value)}")
