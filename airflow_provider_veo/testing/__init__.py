"""Test tooling: a local CometAPI emulator and its pytest fixture.

Names are imported on first use, so that loading the ``veo_emulator`` pytest plugin does not start
importing the HTTP server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow_provider_veo.testing.sample import SAMPLE_MP4

if TYPE_CHECKING:
    from airflow_provider_veo.testing.emulator import (
        EmulatedJob,
        FilePart,
        RecordedRequest,
        Scenario,
        VeoEmulator,
    )


__all__ = ["SAMPLE_MP4", "EmulatedJob", "FilePart", "RecordedRequest", "Scenario", "VeoEmulator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("airflow_provider_veo.testing.emulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
