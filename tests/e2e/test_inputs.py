"""Bad input, in real DAG runs against the emulator: refused before paying, once, without retries.

Every case runs ``dag.test()`` with a metadata DB and asserts the task's state and tries, that no
create request (the paid call) reached the emulator, that nothing was written at the destination,
and what the task log says. A damaged durable record is damaged in the metadata DB itself, between
a task's first try and its retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.api import VeoInputError
from airflow_provider_veo.operators.durable import STATE_KEY
from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import load_dag, run_dag

from . import reliability
from .conftest import dag_named
from .test_resume import airflow_has_task_state_store

DAGS = "veo_inputs_dags.py"
VIA = "generate, dag.test()"


def final_error_lines(log: str, text: str) -> list[str]:
    """The log lines that show ``text`` as an exception's message (``SomeError: <text>…``)."""
    return [line for line in log.splitlines() if f"Exception: {text}" in line or f"Error: {text}" in line]


RENDERED = [
    pytest.param({"seconds": 10**400}, "seconds", "`seconds` renders as 10**400", id="seconds-10**400"),
    pytest.param({"seconds": 1e308}, "seconds", "`seconds` renders as 1e308", id="seconds-1e308"),
    pytest.param({"destination": 42}, "destination", "`destination` renders as 42", id="destination-42"),
    pytest.param(
        {"input_reference": [5]}, "input_reference", "`input_reference` renders as [5]", id="reference-5"
    ),
    pytest.param(
        {"reuse": "perhaps"}, "reuse_previous_job", "`reuse_previous_job` renders as 'perhaps'", id="reuse"
    ),
]
MAPPED = "a mapped `seconds` the model does not allow"
DAMAGED_CASES = {
    "wrong-types": "durable record with wrong types, between tries",
    "a-list": "durable record that is a list, between tries",
    "truncated-json": "durable record truncated in the metadata DB, between tries",
}
CASES = [
    *(f"input: {param.values[2]}" for param in RENDERED),
    f"input: {MAPPED}",
    *(f"input: {case}" for case in DAMAGED_CASES.values()),
]
TABLE = reliability.section(
    "Bad input and a damaged durable record",
    "the emulator's default profile, in full `dag.test()` runs with `retries=2`; the durable record "
    "overwritten in the metadata DB between the first try (which pays, then fails its download) and "
    "the retry",
    CASES,
)


@pytest.mark.parametrize(("conf", "field", "case"), RENDERED)
def test_a_bad_rendered_argument_fails_once_before_any_post(
    emulator: VeoEmulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    conf: dict[str, Any],
    field: str,
    case: str,
) -> None:
    out = tmp_path / "out"
    result = run_dag(dag_named("veo_inputs_rendered", DAGS), run_conf={"destination": f"{out}/", **conf})

    task = result.task("generate_video")
    assert (result.state, task.state, task.try_number) == ("failed", "failed", 1)  # retries=2: not used
    assert emulator.posts == []
    assert emulator.requests == []  # not even a read: refused before anything is sent
    assert not out.exists()
    log = capfd.readouterr().out
    shown = final_error_lines(log, f"Invalid `{field}`")
    assert len(shown) == 1, shown  # once, not once per wrapping exception
    assert "The above exception was the direct cause" not in log
    outcome = f"fails at once, no retry, logged once: “Invalid `{field}`”"
    TABLE.record(f"input: {case}", VIA, outcome, 0, 0, "nothing")


@pytest.mark.parametrize(
    ("argument", "field"),
    [
        ("poll_interval=0", "poll_interval"),
        ("poll_interval='15'", "poll_interval"),
        ("timeout=float('nan')", "timeout"),
        ("timeout=10**400", "timeout"),
        ("max_submissions=0", "max_submissions"),
        ("seconds=10**400", "seconds"),
        ("prompt='a fox \\udc80 in the snow'", "prompt"),
        ("destination=b'/videos/'", "destination"),
    ],
)
def test_a_bad_literal_argument_fails_the_dag_file_naming_it(
    metadata_db: None, tmp_path: Path, argument: str, field: str
) -> None:
    given = {"prompt": "'a fox'", "destination": "'/videos/'"}
    name, _, value = argument.partition("=")
    arguments = ", ".join(f"{key}={text}" for key, text in {**given, name: value}.items())
    # What the DAG processor shows as the file's import error: no task of it is ever run.
    dag_file = tmp_path / "veo_bad_literal.py"
    dag_file.write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator\n"
        "with DAG('veo_bad_literal', schedule=None, start_date=pendulum.datetime(2026, 1, 1)):\n"
        "    VeoGenerateVideoOperator(\n"
        f"        task_id='generate_video', {arguments},\n"
        "    )\n"
    )
    with pytest.raises(VeoInputError) as info:
        load_dag(dag_file, "veo_bad_literal")
    assert info.value.field == field
    assert str(info.value).startswith(f"Invalid `{field}`: ")


def test_a_bad_mapped_value_fails_its_task_only_and_is_not_retried(
    emulator: VeoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag(dag_named("veo_inputs_mapped", DAGS))

    good, bad = result.mapped("create_video")
    assert (good.state, good.try_number) == ("success", 1)
    assert (bad.state, bad.try_number) == ("failed", 1)  # retries=2: not used
    assert len(emulator.posts) == 1  # the good one's
    assert len(final_error_lines(capfd.readouterr().out, "Invalid `seconds`")) == 1
    outcome = "that task fails at once, no retry; the others run: “Invalid `seconds`”"
    TABLE.record(f"input: {MAPPED}", "create, mapped, dag.test()", outcome, "1 (the valid task's)", 1, "-")


# --------------------------------------------------------------------------------------------
# A durable record damaged between a task's tries
# --------------------------------------------------------------------------------------------


class RecordDamage:
    """Overwrite this DAG's durable record in the metadata DB as soon as the first try has written it.

    The task's retry comes 5 s after its first try fails (``retry_delay``), so the damage is done long
    before the retry reads the record; :meth:`done` says whether it was.
    """

    def __init__(self, dag_id: str, damaged_value: str) -> None:
        self.dag_id, self.damaged_value = dag_id, damaged_value
        self.damaged = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from airflow.models.task_state_store import TaskStateStoreModel
        from airflow.utils.session import create_session

        with create_session() as session:  # the records of earlier runs of this DAG are left alone
            earlier = {row.id for row in session.query(TaskStateStoreModel).filter_by(dag_id=self.dag_id)}
        while not self.stop.is_set():
            with create_session() as session:
                found = session.query(TaskStateStoreModel).filter_by(dag_id=self.dag_id, key=STATE_KEY).all()
                rows = [row for row in found if row.id not in earlier]
                if rows:
                    for row in rows:
                        row.value = self.damaged_value
                    session.commit()
                    self.damaged.set()
                    return
            time.sleep(0.02)

    def __enter__(self) -> RecordDamage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


DAMAGED = [
    pytest.param('{"video_id": 42, "submitted_at": "yesterday"}', "cannot be read", 2, id="wrong-types"),
    pytest.param('["vid_1"]', "cannot be read", 2, id="a-list"),
    pytest.param('{"video_id": "vid_1", "submitted_a', "Could not read", 3, id="truncated-json"),
]


@pytest.fixture
def needs_task_state_store() -> Iterator[None]:
    if not airflow_has_task_state_store():
        pytest.skip("task_state_store arrived in Airflow 3.3")
    yield


@pytest.mark.parametrize(("damaged", "says", "tries"), DAMAGED)
def test_a_damaged_record_never_pays_again(
    needs_task_state_store: None,
    emulator: VeoEmulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    damaged: str,
    says: str,
    tries: int,
    request: pytest.FixtureRequest,
) -> None:
    # The first try pays, then its download fails (every fetch of the video meets an expired URL).
    emulator.queue_scenario(Scenario(expired_url_fetches=3))
    with RecordDamage("veo_inputs_retry_later", damaged) as damage:
        result = run_dag(dag_named("veo_inputs_retry_later", DAGS), run_conf={"destination": f"{tmp_path}/"})
    assert damage.damaged.is_set()

    task = result.task("generate_video")
    # Garbage is final at the retry; a record the store cannot even return is retried, and never paid.
    assert (result.state, task.state, task.try_number) == ("failed", "failed", tries)
    assert len(emulator.posts) == 1
    assert list(tmp_path.iterdir()) == []
    log = capfd.readouterr().out
    assert says in log and "not" in log
    assert "Submitted video" in log  # the earlier try's line, where its id is found again
    kind = "fails at the retry, without another" if tries == 2 else "retries read it again, never submit"
    case = DAMAGED_CASES[request.node.callspec.id]
    TABLE.record(f"input: {case}", VIA, f"{kind}: “{says}”", "1 (the first try's)", 1, "nothing")
