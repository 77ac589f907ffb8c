"""The Videos view's FastAPI app, mounted by Airflow's api-server under ``/veo``.

A mounted app inherits none of the api-server's authorisation, so every route here depends on
Airflow's own ``requires_access_dag`` (read access to the run's XComs of that DAG, through whichever
auth manager is configured): the user comes from the ``Authorization`` header or the UI's
``_token`` cookie, which the iframe sends. Videos are addressed by DAG, run, task and map index,
and only what that task instance recorded is served.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from airflow_provider_veo.ui import media, page
from airflow_provider_veo.ui.recorded import RecordedVideo, recorded_videos

#: What the UI leaves in a task instance tab's URL when the task is not mapped.
UNMAPPED = "{MAP_INDEX}"
#: At most this many recorded locations are checked at once while a page is built (an object store
#: answers each in a round trip).
_CHECKS_IN_PARALLEL = 8

#: Read access to the DAG's XComs, which is where the videos' records are (the DAG from the path).
ReadsRunXComs = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM))
RangeHeader = Annotated[str | None, Header(alias="range")]
IfRangeHeader = Annotated[str | None, Header(alias="if-range")]

app = FastAPI(
    title="Veo videos",
    description="The Videos view of airflow-provider-veo: a DAG run's stored videos.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


def _map_index(value: str) -> int:
    """A map index from the URL: a number from -1 up, or the UI's placeholder for an unmapped task."""
    if value == UNMAPPED:
        return -1
    try:
        index = int(value)
    except ValueError:
        raise HTTPException(404, "No such task instance") from None
    if index < -1:
        raise HTTPException(404, "No such task instance")
    return index


def _media_url(request: Request, kind: str, recorded: RecordedVideo, dag_id: str, run_id: str) -> str:
    parts = (dag_id, recorded.task_id, str(recorded.map_index), run_id)
    path = "/".join(quote(part, safe="") for part in parts)
    return f"{request.scope.get('root_path', '')}/{kind}/{path}"


def _page(
    request: Request, dag_id: str, run_id: str, videos: list[RecordedVideo], heading: str, empty: str
) -> Response:
    with ThreadPoolExecutor(max_workers=_CHECKS_IN_PARALLEL) as pool:
        checks = list(pool.map(lambda recorded: media.check(recorded.video), videos))
    cards = [
        page.Card(
            recorded,
            check,
            _media_url(request, "play", recorded, dag_id, run_id),
            _media_url(request, "download", recorded, dag_id, run_id),
        )
        for recorded, check in zip(videos, checks, strict=True)
    ]
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(
        page.render(heading=heading, cards=cards, empty=empty, nonce=nonce),
        headers={
            "content-security-policy": page.content_security_policy(nonce),
            "cache-control": "no-store",
            "referrer-policy": "same-origin",
            "x-content-type-options": "nosniff",
        },
    )


@app.get("/runs/{dag_id}/{run_id:path}", dependencies=[ReadsRunXComs], response_class=HTMLResponse)
def run_videos(request: Request, dag_id: str, run_id: str) -> Response:
    """The DAG run's tab: every video its tasks stored."""
    videos = recorded_videos(dag_id, run_id)
    return _page(request, dag_id, run_id, videos, f"Videos of {run_id}", "No stored videos in this run yet.")


@app.get("/tasks/{dag_id}/{task_id}/{map_index}/{run_id:path}", dependencies=[ReadsRunXComs])
def task_videos(request: Request, dag_id: str, task_id: str, map_index: str, run_id: str) -> Response:
    """The task instance's tab: the video it stored, if any."""
    videos = recorded_videos(dag_id, run_id, task_id=task_id, map_index=_map_index(map_index))
    return _page(
        request, dag_id, run_id, videos, f"Video of {task_id}", "No stored video in this task instance yet."
    )


def _serve(
    dag_id: str,
    task_id: str,
    map_index: str,
    run_id: str,
    range_: str | None,
    if_range: str | None,
    download: bool,
) -> Response:
    found = recorded_videos(dag_id, run_id, task_id=task_id, map_index=_map_index(map_index))
    if not found:
        raise HTTPException(404, "This task instance recorded no video")
    video = found[0].video
    state = media.check(video)
    if state.availability != "available":
        raise HTTPException(404 if state.availability != "unreachable" else 502, state.reason)
    return media.response(video, range_header=range_, if_range=if_range, download=download)


@app.get("/play/{dag_id}/{task_id}/{map_index}/{run_id:path}", dependencies=[ReadsRunXComs])
def play(
    dag_id: str,
    task_id: str,
    map_index: str,
    run_id: str,
    range_: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """The video for the page's player, inline; a ``Range`` request gets 206 and just those bytes."""
    return _serve(dag_id, task_id, map_index, run_id, range_, if_range, download=False)


@app.get("/download/{dag_id}/{task_id}/{map_index}/{run_id:path}", dependencies=[ReadsRunXComs])
def download(
    dag_id: str,
    task_id: str,
    map_index: str,
    run_id: str,
    range_: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """The video as an attachment, under its stored file name (resumable by range, too)."""
    return _serve(dag_id, task_id, map_index, run_id, range_, if_range, download=True)
