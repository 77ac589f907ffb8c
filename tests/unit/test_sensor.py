"""VeoTaskSensor: poke decisions, deferral and resumption, with a mocked hook."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.sdk import PokeReturnValue

from airflow_provider_veo import api
from airflow_provider_veo.api import VeoTransientError, VideoJob
from airflow_provider_veo.compat import AirflowFailException, AirflowSensorTimeout
from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.sensors.veo import VeoTaskSensor
from airflow_provider_veo.triggers.veo import VeoTaskTrigger
from airflow_provider_veo.waiting import DEFERRAL_GRACE

from .conftest import TRIGGER_KWARGS, VIDEO_ID, job_json

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]


def _job(status: str, **fields: Any) -> VideoJob:
    return VideoJob.from_json(job_json(status=status, **fields))


def _sensor(*answers: Any, **kwargs: Any) -> tuple[VeoTaskSensor, Any]:
    hook = mock.create_autospec(VeoHook, instance=True)
    hook.get_video.side_effect = list(answers)
    kwargs.setdefault("poke_interval", 30)
    kwargs.setdefault("timeout", 1800)
    sensor = VeoTaskSensor(task_id="wait", video_id=VIDEO_ID, **kwargs)
    sensor.hook = hook  # replaces the cached_property for this instance
    return sensor, hook


def test_poke_false_while_running() -> None:
    sensor, hook = _sensor(_job("queued"), _job("in_progress", progress=50), _job("RENDERING"))
    for _ in range(3):
        result = sensor.poke({})
        assert isinstance(result, PokeReturnValue)
        assert result.is_done is False
        assert not result
    assert hook.get_video.call_args_list == [mock.call(VIDEO_ID)] * 3


def test_poke_done_on_completed_with_the_job() -> None:
    completed = _job("completed", progress=100, video_url="https://cdn.test/v.mp4", size="720x1280")
    sensor, _ = _sensor(_job("in_progress"), completed)
    assert not sensor.poke({})
    result = sensor.poke({})
    assert result.is_done is True
    assert result.xcom_value == completed.to_dict()
    assert result.xcom_value["video_url"] == "https://cdn.test/v.mp4"


@pytest.mark.parametrize("status", ["failed", "error"])
def test_poke_fails_on_failed_job(status: str) -> None:
    failed = _job(status, error={"code": "content_policy_violation", "message": "unsafe prompt"})
    sensor, _ = _sensor(failed)
    with pytest.raises(AirflowFailException) as info:
        sensor.poke({})
    assert "content_policy_violation" in str(info.value)
    assert "unsafe prompt" in str(info.value)
    assert repr(status) in str(info.value)


def test_poke_transient_error_is_not_done() -> None:
    sensor, hook = _sensor(VeoTransientError("HTTP 503"), _job("completed"))
    assert sensor.poke({}).is_done is False
    assert sensor.poke({}).is_done is True
    assert hook.get_video.call_count == 2


def test_poke_permanent_error_fails() -> None:
    sensor, _ = _sensor(api.VeoAuthenticationError("Invalid token"))
    with pytest.raises(AirflowFailException, match="Invalid token"):
        sensor.poke({})


def test_deferrable_defers_when_not_done() -> None:
    sensor, hook = _sensor(
        _job("in_progress"), deferrable=True, poke_interval=20, timeout=600, veo_conn_id="v2"
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    assert hook.get_video.call_count == 1
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, VeoTaskTrigger)
    assert (trigger.video_id, trigger.veo_conn_id, trigger.poll_interval) == (VIDEO_ID, "v2", 20.0)
    assert before + 600 <= trigger.end_time <= time.time() + 600
    assert set(trigger.serialize()[1]) == TRIGGER_KWARGS
    assert before <= (trigger.status_read_at or 0) <= time.time()  # its check: polls go on an interval later
    assert deferred.timeout == timedelta(seconds=600) + DEFERRAL_GRACE


def test_deferrable_returns_at_once_when_done() -> None:
    completed = _job("completed")
    sensor, hook = _sensor(completed, deferrable=True)
    assert sensor.execute({}) == completed.to_dict()
    assert hook.get_video.call_count == 1


def test_deferrable_fails_at_once_on_failed_job() -> None:
    sensor, _ = _sensor(_job("failed", error={"code": "x1", "message": "nope"}), deferrable=True)
    with pytest.raises(AirflowFailException, match="nope"):
        sensor.execute({})


def test_execute_complete_success() -> None:
    completed = _job("completed", video_url="https://cdn.test/v.mp4")
    sensor, hook = _sensor()
    assert sensor.execute_complete({}, api.job_event(completed)) == completed.to_dict()
    hook.get_video.assert_not_called()


def test_execute_complete_failed() -> None:
    failed = _job("error", error={"code": "upstream_error", "message": "render crashed"})
    sensor, _ = _sensor()
    with pytest.raises(AirflowFailException) as info:
        sensor.execute_complete({}, api.job_event(failed))
    assert "upstream_error" in str(info.value) and "render crashed" in str(info.value)


def test_execute_complete_timeout() -> None:
    sensor, _ = _sensor()
    with pytest.raises(AirflowSensorTimeout, match=VIDEO_ID.replace(".", r"\.")):
        sensor.execute_complete({}, api.timeout_event(VIDEO_ID))


def test_execute_complete_error_event() -> None:
    sensor, _ = _sensor()
    event = api.error_event(VIDEO_ID, api.VeoBadRequestError("task not found"))
    with pytest.raises(AirflowFailException, match="task not found"):
        sensor.execute_complete({}, event)


def test_deferred_sensor_with_soft_fail_skips_on_a_failed_job() -> None:
    from airflow_provider_veo.compat import AirflowSkipException

    failed = VideoJob.from_json(job_json(status="failed", error={"code": "policy", "message": "refused"}))
    sensor = VeoTaskSensor(task_id="wait", video_id=VIDEO_ID, deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException, match="refused"):
        sensor.execute_complete({}, api.job_event(failed))
    hard = VeoTaskSensor(task_id="wait2", video_id=VIDEO_ID, deferrable=True)
    with pytest.raises(AirflowFailException, match="refused"):
        hard.execute_complete({}, api.job_event(failed))
