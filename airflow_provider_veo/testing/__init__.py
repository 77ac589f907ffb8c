"""Test tooling: a local CometAPI emulator and its pytest fixture.

Names are imported on first use, so that loading the ``veo_emulator`` pytest plugin does not start
importing the HTTP server.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_veo.testing.emulator import (
        EmulatedJob,
        FilePart,
        RecordedRequest,
        Scenario,
        VeoEmulator,
    )

#: A real 1.5-second 320x180 H.264 MP4 at 24 fps: what the emulator serves, its movie header rewritten
#: to say the duration and frame size each job asked for (see ``emulator.bodies.Clip``).
SAMPLE_MP4 = Path(__file__).parent / "data" / "sample.mp4"

__all__ = ["SAMPLE_MP4", "EmulatedJob", "FilePart", "RecordedRequest", "Scenario", "VeoEmulator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("airflow_provider_veo.testing.emulator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
