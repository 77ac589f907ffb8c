"""The sample clip, a leaf module: the emulator's bodies and the ``testing`` package both read its
path without importing each other."""

from __future__ import annotations

from pathlib import Path

#: A real 1.5-second 320x180 H.264 MP4 at 24 fps: what the emulator serves, its movie header rewritten
#: to say the duration and frame size each job asked for (see ``emulator.bodies.Clip``).
SAMPLE_MP4 = Path(__file__).parent / "data" / "sample.mp4"
