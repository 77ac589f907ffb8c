"""The Videos view's routes (airflow_provider_veo.ui) against a real run's XComs and real files.

A module fixture runs a small DAG with ``dag.test()``: its tasks write MP4 files and return
StoredVideo results (one mapped with labels, one pointing at an object store, one forged to name a
text file, one not a video at all), so the routes read what Airflow itself stored. The app is
mounted under ``/veo`` as the api-server mounts it; users are authorised by an auth manager that
lets each user read only some DAGs.
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

from airflow_provider_veo.testing.runner import load_dag, migrate_metadata_db
from airflow_provider_veo.ui.recorded import as_stored_video, recorded_videos

DAG_ID = "veo_videos_view_unit"
OTHER_DAG = "someone_elses_dag"
#: Sizes of the mapped task's files, by label; "gone" is deleted after the run.
CLIPS = {"dawn": 300_000, "dusk": 1_000, "gone": 2_000}
#: Which DAGs each user may read.
READABLE = {"viewer": {DAG_ID}, "stranger": {OTHER_DAG}}

DAG_SOURCE = """
from __future__ import annotations

import hashlib
from pathlib import Path

import pendulum
from airflow.sdk import DAG, get_current_context, task

FOLDER = Path({folder!r})
MP4_HEAD = {head!r}


def stored(uri, content, **fields):
    return {{
        "video_id": fields.pop("video_id", "veo3.1-fast:1-" + Path(uri).stem),
        "uri": uri,
        "asset_uri": "file://" + uri if uri.startswith("/") else uri,
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "content_type": "video/mp4",
        "model": "veo3.1-fast",
        "seconds": "8",
        "size": "1280x720",
        "duration_seconds": 8.0,
        "width": 1280,
        "height": 720,
        "prompt": "A <b>bold</b> sunrise over " + Path(uri).stem,
        "prompt_sha256": None,
        "input_reference": [],
        "usage": None,
        **fields,
    }}


def mp4(size):
    filler = bytes(i % 251 for i in range(size - len(MP4_HEAD) - 8))
    return MP4_HEAD + (8 + len(filler)).to_bytes(4, "big") + b"mdat" + filler


with DAG(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):

    @task(map_index_template="{{{{ clip }}}}")
    def store(clip, size):
        get_current_context()["clip"] = clip
        content = mp4(size)
        path = FOLDER / (clip + ".mp4")
        path.write_bytes(content)
        return stored(str(path), content)

    @task
    def in_object_store():
        return stored("memory://veo-videos-view/clips/harbour.mp4", mp4(5_000))

    @task
    def forged():
        secret = FOLDER / "secret.txt"
        secret.write_text("not a video, but the api-server can read it")
        return stored(str(secret), secret.read_bytes())

    @task
    def not_a_video():
        return "veo3.1-fast:1-just-an-id"

    store.expand_kwargs({clips!r})
    in_object_store()
    forged()
    not_a_video()
"""


class DagScopedAuthManager(SimpleAuthManager):
    """Airflow's simple auth manager, but each user reads only the DAGs of :data:`READABLE`."""

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        dag_id = getattr(details, "id", None)
        return method == "GET" and dag_id in READABLE.get(user.get_name(), set())


@dataclass(frozen=True)
class Run:
    run_id: str
    folder: Path
    results: dict[tuple[str, int], dict[str, Any]]

    def url(self, kind: str, task_id: str, map_index: int | str = -1, dag_id: str = DAG_ID) -> str:
        parts = (dag_id, task_id, str(map_index), self.run_id)
        return f"/veo/{kind}/" + "/".join(quote(part, safe="") for part in parts)

    def page(self, dag_id: str = DAG_ID) -> str:
        return f"/veo/runs/{quote(dag_id, safe='')}/{quote(self.run_id, safe='')}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The DAG, run once with ``dag.test()``; then "gone" is deleted."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from .conftest import MP4_HEAD

    migrate_metadata_db()
    folder = tmp_path_factory.mktemp("videos")
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "veo_videos_view_unit.py"
    clips = [{"clip": clip, "size": size} for clip, size in CLIPS.items()]
    dag_file.write_text(
        textwrap.dedent(DAG_SOURCE).format(folder=str(folder), head=MP4_HEAD, dag_id=DAG_ID, clips=clips)
    )
    dag_run = load_dag(dag_file, DAG_ID).test()
    assert str(dag_run.state).endswith("success"), dag_run.state
    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=DAG_ID, run_id=dag_run.run_id, key="return_value")
        results = {(row.task_id, row.map_index): as_stored_video(row.value) for row in rows}
    (folder / "gone.mp4").unlink()
    return Run(dag_run.run_id, folder, {key: value for key, value in results.items() if value is not None})


@pytest.fixture(scope="module")
def auth_manager() -> Iterator[DagScopedAuthManager]:
    from airflow.api_fastapi.app import init_auth_manager

    names = {
        "AIRFLOW__CORE__AUTH_MANAGER": f"{__name__}.DagScopedAuthManager",
        "AIRFLOW__API_AUTH__JWT_SECRET": "videos-view-unit-tests-not-a-secret",
    }
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        manager = init_auth_manager()
        assert isinstance(manager, DagScopedAuthManager)
        yield manager
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def client(auth_manager: DagScopedAuthManager) -> Any:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_provider_veo.ui.app import app

    server = FastAPI()
    server.mount("/veo", app)
    return TestClient(server)


def token(manager: DagScopedAuthManager, name: str) -> dict[str, str]:
    user = SimpleAuthManagerUser(username=name, role="viewer")
    return {"Authorization": f"Bearer {manager.generate_jwt(user)}"}


@pytest.fixture(scope="module")
def viewer(auth_manager: DagScopedAuthManager) -> dict[str, str]:
    return token(auth_manager, "viewer")


# -- what a run recorded --------------------------------------------------------------------------


def test_the_run_recorded_its_videos_and_only_those(run: Run) -> None:
    found = recorded_videos(DAG_ID, run.run_id)
    assert [(v.task_id, v.map_index, v.label) for v in found] == [
        ("forged", -1, None),
        ("in_object_store", -1, None),
        ("store", 0, "dawn"),
        ("store", 1, "dusk"),
        ("store", 2, "gone"),
    ]
    assert found[2].video == run.results[("store", 0)]
    assert found[2].stored_at.tzinfo is not None
    assert recorded_videos(DAG_ID, run.run_id, task_id="store", map_index=1)[0].label == "dusk"
    assert recorded_videos(DAG_ID, run.run_id, task_id="not_a_video") == []
    assert recorded_videos(OTHER_DAG, run.run_id) == []


@pytest.mark.parametrize(
    "value",
    [
        '"veo3.1-fast:1-id"',
        "[1, 2]",
        "not json",
        {"uri": "/x.mp4", "bytes": True, "sha256": "", "video_id": ""},
    ],
)
def test_other_return_values_are_not_videos(value: Any) -> None:
    assert as_stored_video(value) is None


# -- authorisation --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["page", "play", "download", "task page"])
def test_every_route_wants_a_user_who_may_read_the_dag(
    client: Any, auth_manager: DagScopedAuthManager, run: Run, kind: str
) -> None:
    url = {
        "page": run.page(),
        "play": run.url("play", "store", 0),
        "download": run.url("download", "store", 0),
        "task page": run.url("tasks", "store", 0),
    }[kind]
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    assert client.get(url, headers=token(auth_manager, "stranger")).status_code == 403
    assert client.get(url, headers=token(auth_manager, "viewer")).status_code == 200


def test_the_ui_session_cookie_authenticates_the_iframe(
    client: Any, auth_manager: DagScopedAuthManager, run: Run
) -> None:
    user = SimpleAuthManagerUser(username="viewer", role="viewer")
    client.cookies.set("_token", auth_manager.generate_jwt(user))
    try:
        assert client.get(run.page()).status_code == 200
    finally:
        client.cookies.clear()


def test_a_readable_dag_does_not_open_another_dags_run(
    client: Any, auth_manager: DagScopedAuthManager, run: Run
) -> None:
    """The stranger may read OTHER_DAG, and asking for this run under that DAG finds nothing."""
    stranger = token(auth_manager, "stranger")
    response = client.get(run.url("play", "store", 0, dag_id=OTHER_DAG), headers=stranger)
    assert response.status_code == 404
    page = client.get(run.page(dag_id=OTHER_DAG), headers=stranger)
    assert page.status_code == 200 and "No stored videos in this run yet." in page.text


# -- the page -------------------------------------------------------------------------------------


def test_the_run_page_lists_every_video_with_its_details(
    client: Any, viewer: dict[str, str], run: Run
) -> None:
    response = client.get(run.page(), headers=viewer)
    assert response.status_code == 200
    html = response.text
    assert html.count('<article class="video">') == 5
    assert html.count("<video ") == 2  # dawn and dusk; the object is not in the store yet
    dawn = run.results[("store", 0)]
    assert f'src="{run.url("play", "store", 0)}"' in html
    assert f'href="{run.url("download", "store", 0)}"' in html
    assert 'store [0]<span class="label">dawn</span>' in html
    assert "A &lt;b&gt;bold&lt;/b&gt; sunrise over dawn" in html and "<b>bold</b>" not in html
    assert f"({dawn['bytes']:,} bytes)" in html and "300.0 KB" in html
    assert "1280 \N{MULTIPLICATION SIGN} 720" in html and "8.0 s" in html and "veo3.1-fast" in html
    # A note instead of a player: gone, the forged text file, and the object (no store attached yet).
    assert html.count('role="note"') == 3
    assert "The recorded file no longer exists." in html
    assert "The file there is no longer an MP4." in html  # forged
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert html.count(f'nonce="{nonce}"') == 2 and "<script>" not in html
    assert response.headers["cache-control"] == "no-store"


def test_empty_run_and_unmapped_task_pages(client: Any, viewer: dict[str, str], run: Run) -> None:
    empty = client.get(f"/veo/runs/{DAG_ID}/manual__never", headers=viewer)
    assert empty.status_code == 200 and "No stored videos in this run yet." in empty.text
    # The UI leaves {MAP_INDEX} as is on an unmapped task instance's page.
    unmapped = client.get(run.url("tasks", "in_object_store", "{MAP_INDEX}"), headers=viewer)
    assert unmapped.status_code == 200 and unmapped.text.count('<article class="video">') == 1
    none = client.get(run.url("tasks", "not_a_video", "{MAP_INDEX}"), headers=viewer)
    assert "No stored video in this task instance yet." in none.text
    assert client.get(run.url("tasks", "store", "x1"), headers=viewer).status_code == 404


# -- serving --------------------------------------------------------------------------------------


def test_a_whole_local_video(client: Any, viewer: dict[str, str], run: Run) -> None:
    response = client.get(run.url("play", "store", 1), headers=viewer)
    assert response.status_code == 200
    assert response.content == (run.folder / "dusk.mp4").read_bytes()
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["etag"] == f'"{run.results[("store", 1)]["sha256"]}"'
    assert response.headers["content-disposition"].startswith("inline")
    download = client.get(run.url("download", "store", 1), headers=viewer)
    assert download.headers["content-disposition"] == 'attachment; filename="dusk.mp4"'


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [
        ("bytes=0-", 0, 299_999),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=-500", 299_500, 299_999),
        ("bytes=299990-400000", 299_990, 299_999),
    ],
)
def test_a_range_of_a_local_video(
    client: Any, viewer: dict[str, str], run: Run, asked: str, first: int, last: int
) -> None:
    content = (run.folder / "dawn.mp4").read_bytes()
    response = client.get(run.url("play", "store", 0), headers={**viewer, "Range": asked})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(content)}"
    assert response.content == content[first : last + 1]


def test_a_range_past_the_end_is_refused(client: Any, viewer: dict[str, str], run: Run) -> None:
    response = client.get(run.url("play", "store", 0), headers={**viewer, "Range": "bytes=300000-"})
    assert response.status_code == 416


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", (0, 99)),
        ("bytes=10-19", (10, 19)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=0-9,20-29", None),  # several ranges: the whole file
        ("bytes=19-10", None),  # malformed: ignored
        ("items=0-9", None),
        ("bytes=-", None),
        ("bytes=100-", ValueError),
        ("bytes=-0", ValueError),
    ],
)
def test_byte_ranges(header: str | None, expected: Any) -> None:
    from airflow_provider_veo.ui.media import byte_range

    if expected is ValueError:
        with pytest.raises(ValueError):
            byte_range(header, 100)
    else:
        assert byte_range(header, 100) == expected


def test_an_object_store_video_streams_with_ranges(
    client: Any, viewer: dict[str, str], run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.io import store
    from fsspec.implementations.memory import MemoryFileSystem

    from .conftest import mp4_bytes

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    filesystem = MemoryFileSystem()
    store.attach(protocol="memory", fs=filesystem)
    content = mp4_bytes(5_000)
    filesystem.pipe("/veo-videos-view/clips/harbour.mp4", content)
    try:
        url = run.url("play", "in_object_store")
        whole = client.get(url, headers=viewer)
        assert whole.status_code == 200 and whole.content == content
        assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-length"] == "5000"
        part = client.get(url, headers={**viewer, "Range": "bytes=100-4999"})
        assert part.status_code == 206
        assert part.headers["content-range"] == "bytes 100-4999/5000"
        assert part.content == content[100:]
        tail = client.get(url, headers={**viewer, "Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == content[-10:]
        assert client.get(url, headers={**viewer, "Range": "bytes=5000-"}).status_code == 416
        # A stale If-Range (another ETag) gets the whole video, as RFC 9110 says.
        stale = client.get(url, headers={**viewer, "Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and len(stale.content) == 5000
        download = client.get(run.url("download", "in_object_store"), headers=viewer)
        assert download.headers["content-disposition"] == "attachment; filename*=utf-8''harbour.mp4"
        page = client.get(run.page(), headers=viewer).text
        assert page.count("<video ") == 3 and "harbour.mp4" in page
    finally:
        filesystem.rm("/veo-videos-view", recursive=True)


def test_only_recorded_mp4s_are_served(client: Any, viewer: dict[str, str], run: Run) -> None:
    # A result forged to name a text file of the same size: recorded, but not an MP4.
    forged = client.get(run.url("play", "forged"), headers=viewer)
    assert forged.status_code == 404 and "no longer an MP4" in forged.json()["detail"]
    assert "api-server can read it" not in forged.text
    # The deleted file, a task without a video, a task that does not exist.
    gone = client.get(run.url("play", "store", 2), headers=viewer)
    assert gone.status_code == 404 and gone.json()["detail"] == "The recorded file no longer exists."
    assert client.get(run.url("play", "not_a_video"), headers=viewer).status_code == 404
    assert client.get(run.url("play", "store", 7), headers=viewer).status_code == 404
    # A path in place of the task id reaches nothing.
    escape = f"/veo/play/{DAG_ID}/..%2F..%2Fetc%2Fpasswd/-1/{quote(run.run_id, safe='')}"
    assert client.get(escape, headers=viewer).status_code == 404


def test_a_changed_file_is_not_served(client: Any, viewer: dict[str, str], run: Run) -> None:
    path = run.folder / "dusk.mp4"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"more")
        response = client.get(run.url("play", "store", 1), headers=viewer)
        assert response.status_code == 404 and "changed since it was recorded" in response.json()["detail"]
    finally:
        path.write_bytes(original)


# -- the plugin -----------------------------------------------------------------------------------


def test_the_plugin_is_registered_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import importlib.metadata

    from airflow_provider_veo.ui import plugin

    [entry] = {e for e in importlib.metadata.entry_points(group="airflow.plugins") if e.name == "veo_videos"}
    assert entry.load() is plugin.VeoVideosPlugin
    views = plugin.VeoVideosPlugin.external_views
    assert {(v["destination"], v["name"]) for v in views} == {
        ("dag_run", "Videos"),
        ("task_instance", "Videos"),
    }
    assert [app["url_prefix"] for app in plugin.VeoVideosPlugin.fastapi_apps] == ["/veo"]
    try:
        monkeypatch.setenv("AIRFLOW__VEO__VIDEOS_VIEW", "False")
        off = importlib.reload(plugin).VeoVideosPlugin
        assert off.fastapi_apps == [] and off.external_views == []
    finally:
        monkeypatch.delenv("AIRFLOW__VEO__VIDEOS_VIEW")
        assert importlib.reload(plugin).VeoVideosPlugin.external_views


def test_an_s3_object_streams_through_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real S3 API (moto's server on loopback) behind an ``aws`` connection, as the api-server reads
    it: checked with a HEAD, served with ranged GETs. Runs where moto and s3fs are installed."""
    pytest.importorskip("s3fs")
    pytest.importorskip("airflow.providers.amazon")
    moto_server = pytest.importorskip("moto.server")
    import boto3
    from fastapi.testclient import TestClient
    from starlette.applications import Starlette
    from starlette.routing import Route

    from airflow_provider_veo.ui import media

    from .conftest import mp4_bytes

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_VEO_VIEW_S3",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                }
            ),
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="videos")
        content = mp4_bytes(3 * media.CHUNK_BYTES // 2)
        s3.put_object(Bucket="videos", Key="night/clip one.mp4", Body=content)
        video: Any = {
            "video_id": "veo3.1-fast:1-s3",
            "uri": "s3://veo_view_s3@videos/night/clip one.mp4",
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        assert media.check(video) == media.Check("available")
        gone = {**video, "uri": "s3://veo_view_s3@videos/night/gone.mp4"}
        assert media.check(gone).availability == "missing"

        def serve(request: Any) -> Any:
            headers = request.headers
            return media.response(
                video, range_header=headers.get("range"), if_range=headers.get("if-range"), download=False
            )

        app = Starlette(routes=[Route("/video", serve)])
        client = TestClient(app)
        whole = client.get("/video")
        assert whole.status_code == 200 and whole.content == content
        part = client.get("/video", headers={"Range": f"bytes={media.CHUNK_BYTES - 10}-"})
        assert part.status_code == 206 and part.content == content[media.CHUNK_BYTES - 10 :]
        assert (
            part.headers["content-range"]
            == f"bytes {media.CHUNK_BYTES - 10}-{len(content) - 1}/{len(content)}"
        )
    finally:
        server.stop()
