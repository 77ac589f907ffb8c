"""Security against the emulator: the key never leaks, ids cannot steer files or URLs, bad input
costs nothing, and the trigger only ever reads.

- Real DAG runs with a distinctive key, then every place it could end up is searched: the printed
  task logs, log files, XComs, the trigger's serialized kwargs and the metadata DB itself.
- Hostile video ids (``/``, ``..``, ``:``, NUL, 1,000 characters): the download lands inside the
  destination folder under a safe name, and the job's URL stays a single path segment.
- A matrix of invalid inputs: each fails before any POST, with a message naming the field.
- A trigger cancelled mid-poll logs the id of the job that goes on running, and a trigger run
  twice (at-least-once) gives the same single event, with GETs only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from airflow_provider_veo import api
from airflow_provider_veo.compat import AirflowFailException
from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.operators.veo import VeoCreateVideoOperator, VeoGenerateVideoOperator
from airflow_provider_veo.testing import SAMPLE_MP4, Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import RunResult, run_dag
from airflow_provider_veo.triggers.veo import VeoTaskTrigger

from .conftest import dag_named
from .faults import FakeTI

KEY = "sk-SECRET-" + secrets.token_hex(16)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))


def use_connection(monkeypatch: pytest.MonkeyPatch, **conn: Any) -> None:
    conn.setdefault("extra", {})
    conn["extra"] = {"retry_base_delay": 0.01, **conn["extra"]}
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps({"conn_type": "veo", **conn}))


@pytest.fixture
def emu(metadata_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[VeoEmulator]:
    """An emulator whose key is :data:`KEY`, with ``veo_default`` pointing at it."""
    with VeoEmulator(api_key=KEY) as emulator:
        use_connection(monkeypatch, host=emulator.url, password=KEY)
        yield emulator


def assert_cdn_never_saw_a_key(emu: VeoEmulator) -> None:
    cdn = [r for r in emu.requests if r.listener == "cdn"]
    assert all("authorization" not in r.headers for r in cdn)
    assert emu.cdn_authorization_attempts == 0


# --------------------------------------------------------------------------------------------
# The key never leaks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretRun:
    id: str
    dag_id: str
    scenario: Scenario | None
    state: str


SECRET_RUNS = [
    SecretRun("t2v-deferrable", "veo_e2e_t2v_deferrable", None, "success"),
    SecretRun("t2v-poke", "veo_e2e_t2v_poke", None, "success"),
    SecretRun("generate-deferrable", "veo_e2e_generate_deferrable", None, "success"),
    SecretRun("generate-poke-job-fails", "veo_e2e_generate_poke", Scenario(outcome="failed"), "failed"),
    # An upstream that echoes the key in a job's error message: unless scrubbed when the job is read,
    # it would reach the trigger's event, the resume kwargs in the DB and the failure message.
    SecretRun(
        "t2v-deferrable-key-echoed-by-upstream",
        "veo_e2e_t2v_deferrable",
        Scenario(outcome="error", error_code="bad_key", error_message=f"key {KEY} is not allowed here"),
        "failed",
    ),
]


def metadata_db_dump(result: RunResult) -> dict[str, str]:
    """The run's XComs, every trigger row and the run's task instances (resume kwargs), from the DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.query(XComModel).filter_by(dag_id=result.dag_id, run_id=result.run_id).all()
        instances = session.query(TaskInstance).filter_by(dag_id=result.dag_id, run_id=result.run_id).all()
        triggers = session.query(Trigger).all()
        return {
            "xcom rows": repr([(x.key, x.value, XComModel.deserialize_value(x)) for x in xcoms]),
            "trigger rows": repr([(t.classpath, t.kwargs) for t in triggers]),
            "task instances": repr(
                [(ti.task_id, ti.state, ti.next_method, ti.next_kwargs) for ti in instances]
            ),
        }


def files_holding(key: str, folder: Path) -> list[str]:
    """Files under ``folder`` whose bytes hold the key: log files, the SQLite DB and its journal."""
    needle = key.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize("run", SECRET_RUNS, ids=lambda r: r.id)
def test_key_never_leaks_from_a_dag_run(
    emu: VeoEmulator, tmp_path: Path, run: SecretRun, capfd: pytest.CaptureFixture[str]
) -> None:
    if run.scenario is not None:
        emu.scenario = run.scenario
    result = run_dag(dag_named(run.dag_id), run_conf={"destination": f"{tmp_path}/"})
    printed = capfd.readouterr()
    assert result.state == run.state, [(t.task_id, t.state, t.try_number) for t in result.tasks]
    if run.state == "failed":
        assert "ended with status" in printed.out  # the failure is explained, only without the key

    places = {
        "stdout (task logs printed by dag.test)": printed.out,
        "stderr": printed.err,
        "XComs of the run": repr([t.xcom for t in result.tasks]),
        **metadata_db_dump(result),
    }
    for video_id in emu.jobs:
        places[f"trigger kwargs of {video_id}"] = json.dumps(VeoTaskTrigger(video_id).serialize())
        if "deferrable" in run.dag_id:  # dag.test() stored the trigger: its row was searched too
            assert repr(video_id) in places["trigger rows"], places["trigger rows"]
    leaks = {name: text for name, text in places.items() if KEY in text}
    assert not leaks, {
        name: [line for line in text.splitlines() if KEY in line][:3] for name, text in leaks.items()
    }
    assert files_holding(KEY, Path(os.environ["AIRFLOW_HOME"])) == []  # logs/, airflow.db, journals
    assert files_holding(KEY, tmp_path) == []
    # The emulator did get the key, as a Bearer token to the API only.
    api_requests = [r for r in emu.requests if r.listener == "api"]
    assert api_requests and all(r.headers["authorization"] == f"Bearer {KEY}" for r in api_requests)
    assert_cdn_never_saw_a_key(emu)
    assert len(emu.posts) == 1


def test_key_never_in_exception_messages(
    emu: VeoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every way a call can fail, with an upstream that echoes the key where it can."""
    import traceback

    hook = VeoHook()
    errors: list[BaseException] = []

    def failing(call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected a failure")

    for failure in ("reset_after_create", "reset_before_create", 402, 403):
        emu.scenario = Scenario(post_failure=failure)
        failing(lambda: hook.create_video("a fox"))
    emu.queue_scenario(Scenario(outcome="failed", error_message=f"rejected {KEY}", polls_until_done=0))
    ti = FakeTI()
    failing(
        lambda: VeoGenerateVideoOperator(
            task_id="generate",
            prompt="a fox",
            destination=f"{tmp_path}/",
            poll_interval=0.01,
            deferrable=False,
        ).execute({"ti": ti})
    )
    echoed = ti.pushed["video_id"]
    assert hook.get_video(echoed).error_message == "rejected ***"
    emu.scenario = Scenario(server_errors=[502] * 5)
    failing(lambda: hook.get_video(echoed))
    failing(lambda: hook.get_video("no-such-job"))
    emu.scenario = Scenario(corrupt_download=True, polls_until_done=0)
    done = hook.create_video("a fox")
    failing(lambda: hook.download_video(done.video_id, f"{tmp_path}/"))

    async def trigger_events() -> list[Any]:
        return [e.payload async for e in VeoTaskTrigger(echoed, poll_interval=0.01).run()]

    event = asyncio.run(trigger_events())[0]
    assert event["status"] == "failed"

    texts = ["".join(traceback.format_exception(e)) for e in errors] + [json.dumps(event)]
    assert len(errors) == 8
    assert [t for t in texts if KEY in t] == []
    assert any("rejected ***" in t for t in texts)  # redacted, not dropped


# --------------------------------------------------------------------------------------------
# Hostile ids
# --------------------------------------------------------------------------------------------

HOSTILE_IDS = {
    "parent-traversal": "../../../../tmp/veo-escape",
    "slashes": "a/b/c",
    "absolute": "/etc/passwd",
    "windows-path": "C:\\Windows\\System32\\evil",
    "colon": "veo3.1:1764905797-816jUFZAkM",
    "nul": "clip\x00.mp4",
    "1000-chars": "v" * 1000,
    "encoded-traversal": "%2e%2e%2f%2e%2e%2fescape",
    "hidden": ".bashrc",
    "newline-and-spaces": "a b\nc",
    "unicode": "vidéo-視頻",
    "query-and-fragment": "x?variant=thumbnail#y",
}
#: A whole id of "." or ".." is a dot segment in /v1/videos/{id}: HTTP clients and proxies resolve it
#: away (requests even un-escapes %2E), so the read would hit another URL. The provider refuses them.
UNADDRESSABLE_IDS = {"dotdot": "..", "dot": "."}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.mp4$")


def generate_through(mode: str, destination: str) -> dict[str, Any]:
    """``VeoGenerateVideoOperator`` as a worker runs it; deferred: the trigger, then ``execute_complete``."""
    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow 3.1
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]

    operator = VeoGenerateVideoOperator(
        task_id="generate",
        prompt="a fox",
        destination=destination,
        poll_interval=0.01,
        deferrable=mode == "deferrable",
    )
    context: Any = {"ti": FakeTI()}
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger

        async def events() -> list[Any]:
            return [e.payload async for e in trigger.run()]

        (event,) = asyncio.run(events())
        return getattr(operator, deferred.method_name)(context, event=event)


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_hostile_ids_cannot_leave_the_destination(emu: VeoEmulator, tmp_path: Path, mode: str) -> None:
    out = tmp_path / "sandbox" / "out"
    names = set()
    for video_id in HOSTILE_IDS.values():
        emu.queue_scenario(Scenario(video_id=video_id))
        video = generate_through(mode, f"{out}/")
        assert video["video_id"] == video_id
        path = Path(video["uri"])
        assert path.parent == out.resolve(), (video_id, path)
        assert SAFE_NAME.match(path.name) and len(path.name.encode()) <= 255, path.name
        assert video["sha256"] == emu.expected_sha256(video_id)
        names.add(path.name)
    assert len(names) == len(HOSTILE_IDS)  # distinct ids, distinct files: none overwrote another
    # Nothing was written anywhere else, and every read hit its job's own URL: one escaped segment.
    assert sorted(p.name for p in (tmp_path / "sandbox").rglob("*")) == sorted([*names, "out"])
    assert not Path("/tmp/veo-escape").exists()
    gets = [r for r in emu.requests if r.listener == "api" and r.method == "GET"]
    assert gets and all(r.status == 200 for r in gets), {(r.path, r.status) for r in gets if r.status != 200}
    assert {r.path for r in gets} == {api.video_path(video_id) for video_id in HOSTILE_IDS.values()}
    assert len(emu.posts) == len(HOSTILE_IDS)
    assert_cdn_never_saw_a_key(emu)


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
@pytest.mark.parametrize("video_id", list(UNADDRESSABLE_IDS.values()), ids=list(UNADDRESSABLE_IDS))
def test_dot_segment_ids_are_refused_not_resolved(
    emu: VeoEmulator, tmp_path: Path, mode: str, video_id: str
) -> None:
    emu.queue_scenario(Scenario(video_id=video_id))
    with pytest.raises(AirflowFailException, match="which cannot be used in a URL"):
        generate_through(mode, f"{tmp_path}/out/")
    assert [r.method for r in emu.requests] == ["POST"]  # no read went to /v1/videos/ or /v1/
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Bad input fails before any POST
# --------------------------------------------------------------------------------------------


@dataclass
class Assets:
    folder: Path
    png: Path = field(init=False)
    text: Path = field(init=False)
    big: Path = field(init=False)

    def __post_init__(self) -> None:
        self.png = self.folder / "frame.png"
        self.png.write_bytes(PNG)
        self.text = self.folder / "notes.png"  # the name lies: it is text
        self.text.write_text("not an image")
        self.big = self.folder / "huge.png"
        with self.big.open("wb") as big:
            big.write(PNG)
            big.truncate(api.MAX_REFERENCE_BYTES + 1)


@dataclass(frozen=True)
class Bad:
    id: str
    field: str
    #: Operator kwargs; a callable gets the :class:`Assets` and the emulator.
    kwargs: dict[str, Any] | Callable[[Assets, VeoEmulator], dict[str, Any]] = field(default_factory=dict)
    #: The connection, instead of the emulator's; a callable gets the emulator.
    connection: Callable[[VeoEmulator], dict[str, Any]] | None = None
    generate_only: bool = False


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BAD_INPUTS = [
    Bad("prompt-empty", "prompt", {"prompt": ""}),
    Bad("prompt-blank", "prompt", {"prompt": "   \n"}),
    Bad("prompt-none", "prompt", {"prompt": None}),
    Bad("prompt-int", "prompt", {"prompt": 42}),
    Bad("prompt-list", "prompt", {"prompt": ["a fox"]}),
    Bad("model-empty", "model", {"model": ""}),
    Bad("model-none", "model", {"model": None}),
    Bad("model-float", "model", {"model": 3.1}),
    Bad("seconds-5-on-veo3.1-fast", "seconds", {"seconds": 5}),
    Bad("seconds-word", "seconds", {"seconds": "five"}),
    Bad("seconds-fraction", "seconds", {"seconds": 4.5}),
    Bad("seconds-negative", "seconds", {"seconds": -4}),
    Bad("seconds-bool", "seconds", {"seconds": True}),
    Bad("seconds-list", "seconds", {"seconds": [4]}),
    Bad("seconds-6-on-fixed-8s-model", "seconds", {"model": "veo3-pro", "seconds": 6}),
    Bad("size-portrait-1080p", "size", {"size": "1080x1920"}),
    Bad("size-star", "size", {"size": "1280*720"}),
    Bad("size-int", "size", {"size": 1280}),
    Bad("size-square-on-veo3-pro", "size", {"model": "veo3-pro", "size": "16x16"}),
    Bad("size-zero-on-veo3-pro", "size", {"model": "veo3-pro", "size": "0x9"}),
    Bad(
        "frame-missing-file", "input_reference", lambda a, e: {"input_reference": str(a.folder / "nope.png")}
    ),
    Bad("frame-text-file", "input_reference", lambda a, e: {"input_reference": str(a.text)}),
    Bad("frame-is-a-video", "input_reference", {"input_reference": str(SAMPLE_MP4)}),
    Bad("frame-over-20MiB", "input_reference", lambda a, e: {"input_reference": str(a.big)}),
    Bad(
        "two-frames-on-veo3.1-fast",
        "input_reference",
        lambda a, e: {"input_reference": [str(a.png), str(a.png)]},
    ),
    Bad(
        "three-frames-on-veo3.1",
        "input_reference",
        lambda a, e: {"model": "veo3.1", "input_reference": [str(a.png)] * 3},
    ),
    Bad("frame-int", "input_reference", {"input_reference": 7}),
    Bad("frame-empty-item", "input_reference", {"input_reference": ["  "]}),
    Bad(
        "frame-url-404",
        "input_reference",
        lambda a, e: {"input_reference": f"{e.cdn_url}/files/missing.png"},
    ),
    Bad("conn-no-password", "password", connection=lambda e: {"host": e.url}),
    Bad(
        "conn-http-host-nowhere",
        "host",
        connection=lambda e: {"host": f"http://127.0.0.1:{closed_port()}", "password": KEY},
    ),
    Bad("conn-ftp-host", "host", connection=lambda e: {"host": "ftp://files.example", "password": KEY}),
    Bad(
        "conn-timeout-not-a-number",
        "extra",
        connection=lambda e: {"host": e.url, "password": KEY, "extra": {"timeout": "soon"}},
    ),
    Bad("destination-empty", "destination", {"destination": ""}, generate_only=True),
    Bad("destination-blank", "destination", {"destination": "  "}, generate_only=True),
    Bad("destination-none", "destination", {"destination": None}, generate_only=True),
    Bad(
        "destination-under-a-file",
        "destination",
        lambda a, e: {"destination": f"{a.png}/videos/"},
        generate_only=True,
    ),
]
OPERATORS = {"create": VeoCreateVideoOperator, "generate": VeoGenerateVideoOperator}
MATRIX = [
    pytest.param(bad, name, id=f"{name}-{bad.id}")
    for bad in BAD_INPUTS
    for name in OPERATORS
    if name == "generate" or not bad.generate_only
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return Assets(tmp_path_factory.mktemp("assets"))


@pytest.mark.parametrize(("bad", "operator_name"), MATRIX)
def test_bad_input_fails_before_any_post(
    emu: VeoEmulator,
    tmp_path: Path,
    assets: Assets,
    monkeypatch: pytest.MonkeyPatch,
    bad: Bad,
    operator_name: str,
) -> None:
    if bad.connection is not None:
        use_connection(monkeypatch, **bad.connection(emu))
    kwargs: dict[str, Any] = {"prompt": "a fox in the snow"}
    if operator_name == "generate":
        kwargs.update(destination=f"{tmp_path}/out/", poll_interval=0.01, deferrable=False)
    given = bad.kwargs(assets, emu) if callable(bad.kwargs) else bad.kwargs
    try:
        operator = OPERATORS[operator_name](task_id="bad_input", **{**kwargs, **given})
    except api.VeoInputError as refused:  # a literal is refused when the task is defined
        assert refused.field == bad.field
        templated = {name: "{{ params.rendered_later }}" for name in given}
        operator = OPERATORS[operator_name](task_id="bad_input", **{**kwargs, **templated})
        for name, value in given.items():  # the same value, as a template would render it
            setattr(operator, name, value)

    with pytest.raises(Exception) as info:
        operator.execute({"ti": FakeTI()})
    message = str(info.value)

    assert emu.posts == []
    assert f"`{bad.field}`" in message, message
    if bad.id == "conn-http-host-nowhere":
        # Connection refused: provably never received, so retried, then a transient (retryable) error.
        assert isinstance(info.value, api.VeoTransientError) and "No answer from http://127.0.0.1:" in message
        assert "may have received" not in message
    else:
        assert isinstance(info.value, AirflowFailException), type(info.value)  # no Airflow retry
        assert f"Invalid `{bad.field}`" in message
    assert not (tmp_path / "out").exists()
    assert KEY not in message


TEMPLATED = [
    pytest.param({"seconds": "5"}, "seconds", id="seconds-renders-5"),
    pytest.param({"size": "1080x1920"}, "size", id="size-renders-portrait-1080p"),
    pytest.param({"prompt": " "}, "prompt", id="prompt-renders-blank"),
    pytest.param({"model": ""}, "model", id="model-renders-empty"),
]


@pytest.mark.parametrize(("params", "field_name"), TEMPLATED)
def test_templated_values_that_render_invalid_fail_before_any_post(
    emu: VeoEmulator, params: dict[str, str], field_name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag(dag_named("veo_fault_templated_create", "veo_fault_dags.py"), run_conf=params)
    task = result.task("create_video")
    assert (task.state, task.try_number) == ("failed", 1)  # retries=2, but bad input is final
    assert f"Invalid `{field_name}`" in capfd.readouterr().out
    assert emu.posts == []


# --------------------------------------------------------------------------------------------
# The trigger only reads: cancelled mid-poll, and run twice
# --------------------------------------------------------------------------------------------


def test_cancelled_trigger_logs_the_job_that_keeps_running(emu: VeoEmulator, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    emu.scenario = Scenario(seconds_until_done=3600)
    job = VeoHook().create_video("a fox")
    emu.reset_records()
    trigger = VeoTaskTrigger(job.video_id, poll_interval=0.05, end_time=time.time() + 60)

    async def run_then_cancel() -> None:
        async def consume() -> list[Any]:
            return [event async for event in trigger.run()]

        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 10
        while len(emu.requests) < 3:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await trigger.on_kill()

    with capture_logs() as events:
        asyncio.run(run_then_cancel())
    polled = len(emu.requests)
    time.sleep(0.2)
    assert len(emu.requests) == polled  # it stopped polling when cancelled

    warnings = [str(e.get("event")) for e in events if e.get("log_level") == "warning"]
    warnings += [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(job.video_id in line and "no cancel endpoint" in line for line in warnings), warnings
    assert {(r.method, r.path) for r in emu.requests} == {("GET", api.video_path(job.video_id))}
    assert emu.posts == []
    assert emu.jobs[job.video_id].status == "queued"  # nothing could cancel it


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_trigger_run_twice_fires_the_same_single_event(emu: VeoEmulator, outcome: str) -> None:
    emu.scenario = Scenario(polls_until_done=0, outcome=outcome)
    job = VeoHook().create_video("a fox")
    emu.reset_records()
    _, kwargs = VeoTaskTrigger(job.video_id, poll_interval=0.01, end_time=time.time() + 30).serialize()

    async def events() -> list[dict[str, Any]]:
        # Rebuilt from its serialized kwargs, as a second triggerer would.
        return [event.payload async for event in VeoTaskTrigger(**kwargs).run()]

    first, second = asyncio.run(events()), asyncio.run(events())
    assert len(first) == len(second) == 1
    assert first[0]["status"] == ("success" if outcome == "completed" else "failed")

    def stable(event: dict[str, Any]) -> dict[str, Any]:
        # video_url is a fresh temporary URL on every read of the job, by the API's design.
        return {**event, "job": {**event["job"], "video_url": None}}

    assert stable(first[0]) == stable(second[0])
    if outcome == "completed":
        assert first[0]["job"]["video_url"] and second[0]["job"]["video_url"]
    assert [(r.method, r.path) for r in emu.requests] == [("GET", api.video_path(job.video_id))] * 2
    assert emu.posts == [] and len(emu.jobs) == 1
