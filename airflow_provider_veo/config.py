"""The provider's settings in Airflow's configuration, read when a task is defined or checked."""

from __future__ import annotations

import math

from airflow_provider_veo.api import arguments
from airflow_provider_veo.compat import configuration

__all__ = ["default_deferrable", "min_poll_interval"]


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when a task is defined, as Airflow's own operators do."""
    return bool(configuration().getboolean("operators", "default_deferrable", fallback=False))


def min_poll_interval() -> float:
    """The shortest ``poll_interval`` this deployment allows: ``[veo] min_poll_interval``, 1 s by default.

    Lowered only where jobs finish in a fraction of a second, as against the emulator; never below 0.01 s.
    """
    floor = configuration().getfloat("veo", "min_poll_interval", fallback=arguments.MIN_POLL_INTERVAL)
    return max(0.01, floor) if math.isfinite(floor) else arguments.MIN_POLL_INTERVAL
