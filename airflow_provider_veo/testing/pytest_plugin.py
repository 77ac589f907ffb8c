"""The ``veo_emulator`` pytest fixture: ``pytest_plugins = ["airflow_provider_veo.testing.pytest_plugin"]``.

Kept import-light: the emulator is imported only when a test asks for the fixture.
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
