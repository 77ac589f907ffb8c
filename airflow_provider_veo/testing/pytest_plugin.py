"""The ``veo_emulator`` pytest fixture, registered through the ``pytest11`` entry point.

Kept import-light: pytest loads this module in every session where the provider is installed, so the
emulator is imported only when a test asks for the fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_veo.testing.emulator import VeoEmulator


@pytest.fixture
def veo_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[VeoEmulator]:
    """A started emulator, with ``AIRFLOW_CONN_VEO_DEFAULT`` pointing at it for the test's duration.

    Set ``veo_emulator.scenario`` or call ``veo_emulator.queue_scenario(...)`` to shape its answers.
    """
    from airflow_provider_veo.testing.emulator import VeoEmulator

    with VeoEmulator() as emulator:
        for name, value in emulator.env().items():
            monkeypatch.setenv(name, value)
        yield emulator
