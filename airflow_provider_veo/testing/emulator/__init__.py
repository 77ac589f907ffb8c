"""A local stand-in for CometAPI's ``/v1/videos`` API, for tests, examples and benchmarks.

It speaks the contract of ``API.md``: multipart create, polling, ``/content``, a separate "CDN" for
``video_url``, the error envelope, and the faults a real deployment meets (429, 5xx bursts, dropped
connections, truncated or corrupt downloads, expired URLs, slow answers).

Two profiles: ``VeoEmulator(server="docs")`` (the default) answers as ``API.md`` documents the API;
``server="new-api"`` answers as the gateway CometAPI really runs (``GATEWAY.md``): its three error
shapes, ``X-Oneapi-Request-Id``, ``unknown`` jobs, ``video_url`` at its own authenticated
``/content``, streamed chunked.

Split the way moto splits a service: :mod:`.scenario` (the knobs and prompt markers), :mod:`.models`
(the emulator's own model table), :mod:`.backend` (jobs, their state and the faults still armed),
:mod:`.bodies` (videos and error bodies), :mod:`.forms` (reading request bodies), :mod:`.responses`
(the request flow both profiles share) with one module per profile (:mod:`.docs_profile`,
:mod:`.newapi_profile`), :mod:`.records` (what was requested) and :mod:`.server` (the listeners and
:class:`VeoEmulator`).

Faults and outcomes come from a :class:`Scenario`. Three places supply one:

* the emulator-wide scenario (``VeoEmulator(scenario=...)`` or ``emu.scenario = ...``): the default
  for new jobs; setting it also arms its request faults, which then count every API request;
* ``emu.queue_scenario(s)``: a FIFO; each valid create call (authenticated, not rate limited, its
  fields accepted) takes the next one, for that job only;
* a marker in the prompt, ``[emu:key=value,key=value]``, applied on top of either, for that job only.
  Keys are :class:`Scenario` field names or the aliases in :data:`MARKER_ALIASES`; lists and
  dictionaries use ``|`` between items and ``:`` between key and value
  (``[emu:errors=503|502,spelling=completed:SUCCESS|in_progress:IN_PROGRESS]``); values are
  percent-decoded, so ``%2C`` stands for a comma. An unknown key is answered with a 400.

A scenario that governs one job (queued or marker) applies its request faults to that job's own
requests: its ``post_failure`` to the create call (for a marker: to the first create carrying that
exact prompt, so a retried task is not refused forever), and the others to the GETs of the job.

Run ``python -m airflow_provider_veo.testing.emulator --port 8765 [--server new-api]`` to use it from
a shell.
"""

from __future__ import annotations

from airflow_provider_veo.testing.emulator.backend import EmulatedJob
from airflow_provider_veo.testing.emulator.bodies import FTYP_HEADER, GATEWAY_ERRORS, expected_sha256
from airflow_provider_veo.testing.emulator.models import MODELS, EmulatedModel
from airflow_provider_veo.testing.emulator.records import FilePart, RecordedRequest
from airflow_provider_veo.testing.emulator.scenario import MARKER_ALIASES, Scenario, parse_marker
from airflow_provider_veo.testing.emulator.server import PROFILES, VeoEmulator

__all__ = [
    "FTYP_HEADER",
    "GATEWAY_ERRORS",
    "MARKER_ALIASES",
    "MODELS",
    "PROFILES",
    "EmulatedJob",
    "EmulatedModel",
    "FilePart",
    "RecordedRequest",
    "Scenario",
    "VeoEmulator",
    "expected_sha256",
    "parse_marker",
]
