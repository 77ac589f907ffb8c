"""Issue 17's gateway items, each as a real DAG run (``dag.test()``) against the emulator's new-api profile.

The key and the URLs it may go to, connections that are subtly wrong, answers that cannot be parsed,
ids that try to forge log lines or shell commands, and what the gateway answers since August 2026:
retired models, model-limited keys, its internal task view, ``/content`` refusing to fetch. Each case
checks the task's state and tries, the POSTs, what is left on disk and what the log says, and records
its row for ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import RunResult, run_dag

from . import reliability
from .conftest import dag_named
from .faults import MODES, leftovers
from .test_resume import airflow_has_task_state_store

DAG_FILE = "veo_hardening_gateway_dags.py"
KEY = "sk-HARDEN-" + secrets.token_hex(12)
#: The generate tasks' ``retries`` in DAG_FILE.
TRIES_AFTER_THE_FIRST = 2

CASES: list[str] = [
    "key pasted with spaces and a newline around it",
    "key with a line break inside",
    "a key the gateway refuses (401)",
    "host with `user:password@`",
    "host without scheme, `schema` and `port` fields",
    "video_url on the API's host, another path",
    *[f"video_url at 169.254.169.254, {mode}" for mode in MODES],
    *[f"poll bodies that cannot be parsed, {mode}" for mode in MODES],
    *[f"poll bodies unparseable past the hook's attempts, {mode}" for mode in MODES],
    "POST: 404 retired model (`no longer available`)",
    "POST: 503 `model_not_found` through every attempt",
    *[f"GET, {mode}: 403 no access to model, first polls" for mode in MODES],
    *[f"GET, {mode}: 403 no access to model past the grace window" for mode in MODES],
    "test_connection with a model-limited key",
    *[f"GET, {mode}: the internal task view, failed with `fail_reason`" for mode in MODES],
    "GET: the internal task view, completed",
    "download: /content answers 403 `request blocked`",
    "download: /content 502 forever, with the batch summary",
    "ids with CR/LF and shell metacharacters, download failing",
    "the CLI's status of an id with an escape sequence and shell metacharacters",
]
TABLE = reliability.section(
    "Hardening: the key, URLs and the gateway's latest answers",
    'the emulator\'s new-api profile (`VeoEmulator(server="new-api")`), in real DAG runs (`dag.test()`) '
    "of a generate task with `retries=2`: “fails at once” is a failed first try",
    CASES,
)


def record(
    case: str, via: str, outcome: str, posts: str | int, jobs: str | int, left: str, *, dag_run: bool = True
) -> None:
    """The case's row; ``via`` is what the DAG's task was, inside a ``dag.test()`` run."""
    TABLE.record(case, f"DAG run: {via}" if dag_run else via, outcome, posts, jobs, left)


def connection(monkeypatch: pytest.MonkeyPatch, **conn: Any) -> None:
    conn["extra"] = {"retry_base_delay": 0.01, **conn.get("extra", {})}
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps({"conn_type": "veo", **conn}))


@pytest.fixture
def gateway(metadata_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[VeoEmulator]:
    with VeoEmulator(api_key=KEY, server="new-api") as emulator:
        connection(monkeypatch, host=emulator.url, password=KEY)
        yield emulator


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def run(out: Path, mode: str = "poke", dag: str = "generate", **conf: str) -> RunResult:
    return run_dag(dag_named(f"veo_hardening_{dag}_{mode}", DAG_FILE), {"destination": f"{out}/", **conf})


def tries(result: RunResult) -> tuple[str | None, int]:
    task = result.task("generate_video")
    return task.state, task.try_number


def assert_stored(result: RunResult, emu: VeoEmulator, out: Path) -> str:
    assert tries(result) == ("success", 1), tries(result)
    video = result.task("generate_video").xcom["return_value"]
    assert video["sha256"] == emu.expected_sha256(video["video_id"])
    assert leftovers(out) == [Path(video["uri"]).name]
    return "the verified MP4"


def assert_final_failure(result: RunResult, out: Path) -> str:
    """Failed on its first try although two retries were allowed, nothing at the destination."""
    assert tries(result) == ("failed", 1), tries(result)
    assert leftovers(out) == []
    return "nothing"


def api_requests(emu: VeoEmulator) -> list[Any]:
    return [r for r in emu.requests if r.listener == "api"]


def content_gets(emu: VeoEmulator) -> list[Any]:
    return [r for r in api_requests(emu) if r.method == "GET" and r.path.split("?")[0].endswith("/content")]


# --------------------------------------------------------------------------------------------
# The key and the connection
# --------------------------------------------------------------------------------------------


def test_a_key_pasted_with_whitespace_is_stripped_and_never_printed(
    gateway: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    connection(monkeypatch, host=gateway.url, password=f"  {KEY}\r\n")
    result = run(out)
    left = assert_stored(result, gateway, out)
    printed = capfd.readouterr()
    assert KEY not in printed.out + printed.err
    assert {r.headers["authorization"] for r in api_requests(gateway)} == {f"Bearer {KEY}"}
    assert len(gateway.posts) == 1
    record(
        "key pasted with spaces and a newline around it",
        "generate, poke",
        "success: the key is sent stripped, and appears in no log line",
        1,
        1,
        left,
    )


def test_a_key_with_a_line_break_inside_is_refused_before_any_request(
    gateway: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    half = len(KEY) // 2
    connection(monkeypatch, host=gateway.url, password=f"{KEY[:half]}\n{KEY[half:]}")
    result = run(out)
    left = assert_final_failure(result, out)
    log = capfd.readouterr().out
    assert "API key of connection 'veo_default' holds spaces, line breaks" in log
    assert "may have received" not in log
    assert KEY[:half] not in log and KEY[half:] not in log
    assert gateway.requests == []
    record(
        "key with a line break inside",
        "generate, poke",
        "fails at once, no request sent: “the API key of connection 'veo_default' holds spaces, line "
        "breaks…”, the key not shown, no “may have received”",
        0,
        0,
        left,
    )


def test_a_refused_key_names_the_connection(
    gateway: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    wrong = "sk-WRONG-" + secrets.token_hex(8)
    connection(monkeypatch, host=gateway.url, password=wrong)
    result = run(out)
    left = assert_final_failure(result, out)
    log = capfd.readouterr().out
    assert "Invalid token" in log and "(connection 'veo_default')" in log
    assert wrong not in log
    assert [p.status for p in gateway.posts] == [401]
    record(
        "a key the gateway refuses (401)",
        "generate, poke",
        "fails at once: “Invalid token… (connection 'veo_default')”, the key not shown",
        1,
        0,
        left,
    )


def test_userinfo_in_the_host_is_refused_naming_the_connection(
    gateway: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    password = "pw-" + secrets.token_hex(8)
    host = gateway.url.replace("http://", f"http://admin:{password}@")
    connection(monkeypatch, host=host, password=KEY)
    result = run(out)
    left = assert_final_failure(result, out)
    log = capfd.readouterr().out
    assert "connection 'veo_default': the base URL holds a user name or password" in log
    assert password not in log and KEY not in log
    assert gateway.requests == []
    record(
        "host with `user:password@`",
        "generate, poke",
        "fails at once, no request sent: “connection 'veo_default': the base URL holds a user name or "
        "password”, neither shown",
        0,
        0,
        left,
    )


def test_a_host_with_schema_and_port_fields_builds_the_right_url(
    gateway: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(gateway.url.rsplit(":", 1)[1])
    connection(monkeypatch, host="127.0.0.1/v1/", schema="http", port=port, password=KEY)
    result = run(out)
    left = assert_stored(result, gateway, out)
    assert {r.path.split("/")[1] for r in api_requests(gateway)} == {"v1"}  # no /v1/v1, port in place
    record(
        "host without scheme, `schema` and `port` fields",
        "generate, poke; host `127.0.0.1/v1/`, schema `http`, port",
        "success: `http://127.0.0.1:<port>` (the port before any path, a trailing /v1 dropped)",
        1,
        1,
        left,
    )


# --------------------------------------------------------------------------------------------
# Where video_url may lead
# --------------------------------------------------------------------------------------------


def test_a_video_url_on_another_path_of_the_api_host_gets_no_key(
    gateway: VeoEmulator, out: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.queue_scenario(Scenario(video_url="{api}/admin/keys?export=all"))
    result = run(out)
    left = assert_stored(result, gateway, out)
    log = capfd.readouterr().out
    assert "is on the API's host but is not this video's /content route" in log
    assert not [r for r in gateway.requests if "/admin" in r.path]  # never fetched, with or without key
    [job_id] = gateway.jobs
    assert [r.path for r in content_gets(gateway)] == [f"/v1/videos/{job_id}/content"]
    record(
        "video_url on the API's host, another path",
        "generate, poke; `video_url` `{api}/admin/keys?export=all`",
        "success from the job's own `/content`; the other path is never requested; a warning says why",
        1,
        1,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_video_url_at_the_metadata_address_is_never_fetched(
    gateway: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.queue_scenario(Scenario(video_url="http://169.254.169.254/latest/meta-data/iam/"))
    result = run(out, mode)
    left = assert_stored(result, gateway, out)
    log = capfd.readouterr().out
    assert "169.254.169.254 is a link-local or cloud metadata address" in log
    assert len(content_gets(gateway)) == 1
    record(
        f"video_url at 169.254.169.254, {mode}",
        f"generate, {mode}",
        "success from the job's own `/content`; the metadata address is refused (a warning says why)",
        1,
        1,
        left,
    )


# --------------------------------------------------------------------------------------------
# Answers that cannot be parsed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_unparseable_poll_bodies_are_retried(
    gateway: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.queue_scenario(Scenario(broken_polls=["nested", "malformed", "not_utf8"]))
    result = run(out, mode)
    left = assert_stored(result, gateway, out)
    log = capfd.readouterr().out
    assert "not a readable job (RecursionError" in log
    assert "not a readable job (JSONDecodeError" in log
    assert "not a readable job (UnicodeDecodeError" in log
    assert len(gateway.posts) == 1
    record(
        f"poll bodies that cannot be parsed, {mode}",
        f"generate, {mode}; 200 bodies: JSON nested 100,000 deep, cut-off JSON, not UTF-8",
        "success: each a transient bad answer, logged and retried within the hook's attempts",
        1,
        1,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_unparseable_poll_bodies_past_the_hooks_attempts_keep_the_wait_alive(
    gateway: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.queue_scenario(Scenario(broken_polls=["nested"] * 12))  # more than one read's 5 attempts
    result = run(out, mode)
    left = assert_stored(result, gateway, out)
    log = capfd.readouterr().out
    assert "could not read the job (CometAPI answered with a body that is not a readable job" in log
    assert len(gateway.posts) == 1
    record(
        f"poll bodies unparseable past the hook's attempts, {mode}",
        f"generate, {mode}; 12 bodies nested 100,000 deep",
        "success: a read that gives up is an outage the wait polls through, never a dead trigger",
        1,
        1,
        left,
    )


# --------------------------------------------------------------------------------------------
# Models the gateway cannot serve, keys limited to models
# --------------------------------------------------------------------------------------------


def test_a_retired_model_is_one_post_and_a_final_failure(
    gateway: VeoEmulator, out: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.scenario = Scenario(model_unavailable="retired")
    result = run(out, model="veo3")
    left = assert_final_failure(result, out)
    log = capfd.readouterr().out
    assert "Model 'veo3' is unavailable (Google retired Veo 3.0" in log
    assert "is no longer available" in log and "choose a current model" in log
    assert [p.status for p in gateway.posts] == [404] and gateway.jobs == {}
    record(
        "POST: 404 retired model (`no longer available`)",
        "generate, poke, model `veo3`",
        "fails at once (no Airflow retry): “Model 'veo3' is unavailable”, Google's “no longer available”, "
        "“choose a current model”",
        1,
        0,
        left,
    )


def test_model_not_found_through_every_attempt_is_a_final_failure(
    gateway: VeoEmulator, out: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.scenario = Scenario(model_unavailable="no_channel")
    result = run(out)
    left = assert_final_failure(result, out)
    log = capfd.readouterr().out
    assert "Model 'veo3.1-fast' is unavailable" in log and "No CometAPI channel served the model" in log
    assert [p.status for p in gateway.posts] == [503] * 5 and gateway.jobs == {}
    record(
        "POST: 503 `model_not_found` through every attempt",
        "generate, poke",
        "fails after the hook's 5 attempts, without Airflow retries: “Model 'veo3.1-fast' is unavailable”",
        "5 (each answered 503)",
        0,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_no_access_to_model_right_after_create_is_waited_out(
    gateway: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.queue_scenario(Scenario(model_access_denied_polls=3))
    result = run(out, mode)
    left = assert_stored(result, gateway, out)
    assert [r.status for r in api_requests(gateway) if r.method == "GET"][:4] == [403, 403, 403, 200]
    assert "is not visible yet" in capfd.readouterr().out
    record(
        f"GET, {mode}: 403 no access to model, first polls",
        f"generate, {mode}",
        "success: within the grace window after its own create, “no access to model” means “not visible yet”",
        1,
        1,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_no_access_to_model_past_the_grace_window_fails_naming_the_id(
    gateway: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.queue_scenario(Scenario(model_access_denied_polls=10_000))
    result = run(out, mode, dag="short_grace")
    left = assert_final_failure(result, out)
    [job_id] = gateway.jobs
    log = capfd.readouterr().out
    assert f"CometAPI refuses this key the status of video {job_id} after the grace window" in log
    assert len(gateway.posts) == 1
    record(
        f"GET, {mode}: 403 no access to model past the grace window",
        f"generate, {mode}, `visibility_grace` 2 s",
        "fails at once: “refuses this key the status of video <id> after the grace window”",
        1,
        1,
        left,
    )


def test_test_connection_says_a_model_limited_key_is_accepted(gateway: VeoEmulator) -> None:
    gateway.scenario = Scenario(model_access_denied_polls=1)
    ok, message = VeoHook().test_connection()
    assert ok, message
    assert "the API key was accepted" in message and "limited to certain models" in message
    assert KEY not in message
    assert [r.status for r in gateway.requests] == [403]
    record(
        "test_connection with a model-limited key",
        "`VeoHook.test_connection()`",
        "“Connection to CometAPI works: the API key was accepted. It is limited to certain models…”",
        0,
        0,
        "nothing",
        dag_run=False,
    )


# --------------------------------------------------------------------------------------------
# The internal task view, /content's refusals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_internal_task_view_gives_the_failure_reason(
    gateway: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    reason = "Video generation failed: the prompt was flagged by the safety filter"
    gateway.queue_scenario(Scenario(internal_task_shape=True, outcome="failed", error_message=reason))
    result = run(out, mode)
    left = assert_final_failure(result, out)
    log = capfd.readouterr().out
    assert f"ended with status 'FAILURE': {reason}" in log
    assert "gave no reason" not in log
    record(
        f"GET, {mode}: the internal task view, failed with `fail_reason`",
        f"generate, {mode}",
        "fails at once: “ended with status 'FAILURE': <fail_reason>”, never “no reason given”",
        1,
        1,
        left,
    )


def test_the_internal_task_view_of_a_completed_job_is_downloaded(gateway: VeoEmulator, out: Path) -> None:
    gateway.queue_scenario(Scenario(internal_task_shape=True))
    result = run(out)
    left = assert_stored(result, gateway, out)
    assert len(content_gets(gateway)) == 1  # no video_url in that view: the job's /content
    record(
        "GET: the internal task view, completed",
        "generate, poke",
        'success: `SUCCESS` and `progress` `"100%"` read, the video fetched from `/content`',
        1,
        1,
        left,
    )


def test_content_request_blocked_is_final_and_clear(
    gateway: VeoEmulator, out: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    gateway.queue_scenario(Scenario(content_blocked=True))
    result = run(out)
    left = assert_final_failure(result, out)
    log = capfd.readouterr().out
    assert "request blocked" in log and "ask its support with the video id" in log
    assert "It cannot be fetched" in log and "stays downloadable" not in log
    assert len(content_gets(gateway)) == 1 and len(gateway.posts) == 1
    record(
        "download: /content answers 403 `request blocked`",
        "generate, poke",
        "fails at once after one `/content` GET: “request blocked”, “on CometAPI's side”, “ask its "
        "support”, “It cannot be fetched”",
        1,
        "1 (completed, billed)",
        left,
    )


def test_an_undeliverable_video_gets_no_fetch_command_in_the_summary(
    gateway: VeoEmulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag(dag_named("veo_hardening_summary", DAG_FILE), {"destination": f"{tmp_path}/"})
    log = capfd.readouterr().out
    assert [(t.state, t.try_number) for t in result.mapped("generate_video")] == [
        ("success", 1),
        ("failed", 1),
    ]
    rows = result.task("summary").xcom["return_value"]
    assert [row["status"] for row in rows] == ["stored", "paid but undeliverable"]
    blocked = rows[1]
    assert blocked["fetch_command"] is None
    assert "cannot be fetched" in blocked["note"] and "Failed to resolve Gemini video URL" in blocked["note"]
    assert "request id" in blocked["note"]
    assert "stays downloadable" not in log and "Map index 1 is not stored; fetch it" not in log
    assert "It cannot be fetched" in log
    assert len(gateway.posts) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == [Path(rows[0]["uri"]).name]
    record(
        "download: /content 502 forever, with the batch summary",
        "mapped generate + `VeoBatchSummaryOperator`",
        "the task fails at once: “cannot deliver it… It cannot be fetched”, no “stays downloadable”; the "
        "summary row is “paid but undeliverable” with no fetch command",
        2,
        "2 (one completed and billed, undeliverable)",
        "the other map index's MP4, the summary",
    )


# --------------------------------------------------------------------------------------------
# Ids that try to forge log lines or shell commands
# --------------------------------------------------------------------------------------------


def test_hostile_ids_cannot_forge_log_lines_or_run_commands(
    gateway: VeoEmulator, out: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pwned = tmp_path / "pwned"
    video_id = f"task_x;$(touch {pwned})`touch {pwned}`'\"\r\nERROR forged line"
    # Every try meets the same id: on Airflow < 3.3 (no task_state_store) each retry pays anew.
    tries = 1 + TRIES_AFTER_THE_FIRST
    for _ in range(tries):
        gateway.queue_scenario(Scenario(video_id=video_id, corrupt_download=True))
    result = run(out)
    task = result.task("generate_video")
    assert task.state == "failed"
    log = capfd.readouterr().out
    assert not re.search(r"^ERROR forged line", log, re.MULTILINE)
    assert "\\r\\nERROR forged line" in log  # shown escaped, on the line it belongs to
    [command] = set(
        re.findall(r"or this shell command: (python -m airflow_provider_veo download .*)$", log, re.M)
    )
    # Pasted into a shell (python stubbed out), it runs nothing the id chose.
    subprocess.run(["bash", "-c", f"python() {{ :; }}; {command}"], check=True, cwd=tmp_path)
    assert not pwned.exists()
    # The one argument it passes is the id as shown on one line: its CR/LF escaped, nothing else changed.
    assert shlex.split(command)[4] == video_id.replace("\r", "\\r").replace("\n", "\\n")
    assert leftovers(out) == []
    assert len(gateway.posts) == (1 if airflow_has_task_state_store() else tries)
    record(
        "ids with CR/LF and shell metacharacters, download failing",
        "generate, poke; id with `;`, `$(...)`, backticks, quotes, CR/LF",
        "fails (retryable download error): CR/LF shown as `\\r\\n`, no forged log line; the fetch "
        "command is shell-quoted: pasted, it runs nothing the id chose",
        1,
        1,
        "nothing",
    )


def test_the_clis_status_of_a_hostile_id_is_escaped_and_quoted(gateway: VeoEmulator, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    video_id = f"task_\x1b[2J\x1b[31m$(touch {pwned});x\r\nvideo_id: forged"
    gateway.queue_scenario(Scenario(video_id=video_id, polls_until_done=0))
    VeoHook().create_video("a fox in the snow")
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_veo", "status", video_id],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "\x1b" not in result.stdout and "\r" not in result.stdout
    )  # no raw escape or CR reaches the terminal
    assert [line for line in result.stdout.splitlines() if line.startswith("video_id:")] == [
        "video_id:     " + video_id.replace("\x1b", "\\x1b").replace("\r", "\\r").replace("\n", "\\n")
    ]
    [hint] = [line for line in result.stdout.splitlines() if line.startswith("Fetch it with: ")]
    command = hint.removeprefix("Fetch it with: ")
    subprocess.run(["bash", "-c", f"python() {{ :; }}; {command}"], check=True, cwd=tmp_path)
    assert not pwned.exists()
    assert KEY not in result.stdout + result.stderr
    record(
        "the CLI's status of an id with an escape sequence and shell metacharacters",
        "`python -m airflow_provider_veo status <id>`",
        "the id printed with ESC, CR and LF escaped (no forged field, no terminal control); the "
        "“Fetch it with” command shell-quoted: pasted, it runs nothing the id chose",
        1,
        1,
        "nothing",
        dag_run=False,
    )
