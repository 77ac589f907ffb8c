"""A deferral with a Fernet key set, as in every real deployment.

The session's other tests run in Airflow's unit-test mode without a Fernet key, where trigger
kwargs are stored unencrypted: that hid an upstream bug of Airflow 3.1 with ``cryptography`` 51
(``MultiFernet`` no longer takes the ``is_encrypted`` attribute Airflow sets on it), which fails
every deferral once a key is set. ``scripts/bootstrap.sh`` pins ``cryptography<51`` for 3.1; this
runs a deferred generate task in a fresh Airflow home, outside unit-test mode, with a key set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import airflow_environment, migrate_metadata_db

ROOT = Path(__file__).resolve().parents[2]

RUN = """
import json, sys
from pathlib import Path
from airflow_provider_veo.testing.runner import load_dag, run_dag

dag = load_dag(Path(sys.argv[1]), "veo_e2e_generate_deferrable")
result = run_dag(dag, run_conf={"destination": sys.argv[2], "prompt": "A fox in the snow"})
task = result.task("generate_video")
print("RESULT " + json.dumps({"run": result.state, "state": task.state, "try": task.try_number}))
"""


def test_deferral_with_a_fernet_key_set(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "tests" / "e2e" / "dags" / "veo_e2e_dags.py", dags)
    env = {
        **os.environ,
        **airflow_environment(tmp_path / "home", dags),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    migrate_metadata_db(env)
    with VeoEmulator() as emulator:
        env.update(emulator.env())
        finished = subprocess.run(
            [sys.executable, "-c", RUN, str(dags / "veo_e2e_dags.py"), f"{tmp_path / 'videos'}/"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        polls = [r for r in emulator.requests if r.method == "GET" and r.listener == "api"]
    lines = [line for line in finished.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the run did not finish (exit {finished.returncode}):\n{finished.stderr[-4000:]}"
    outcome = json.loads(lines[-1].removeprefix("RESULT "))
    assert outcome == {"run": "success", "state": "success", "try": 1}, finished.stderr[-4000:]
    # The wait really was deferred (the trigger ran in line, as dag.test() runs it) and polled the job;
    # the video was stored once.
    assert "[DAG TEST] running trigger in line" in finished.stdout + finished.stderr
    assert len(emulator.posts) == 1 and polls
    assert [p.suffix for p in (tmp_path / "videos").iterdir()] == [".mp4"]
