"""Wait for a Veo job to finish, in poke mode or deferred to the triggerer."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_veo import api
from airflow_provider_veo.api import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, JobWatch, VideoJob
from airflow_provider_veo.operators.veo import DEFERRAL_GRACE
from airflow_provider_veo.outcomes import AirflowSensorTimeout, default_deferrable, task_outcomes

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_veo.hooks.veo import VeoHook


class VeoTaskSensor(BaseSensorOperator):
    """Succeed when the video is ``completed``; fail without retrying when it is ``failed`` or ``error``.

    The completed job (status, ``video_url``, model, seconds, size) is its XCom return value. With
    ``deferrable=True`` it checks once, then waits in
    :class:`~airflow_provider_veo.triggers.veo.VeoTaskTrigger` and holds no worker slot.

    :param video_id: the job to wait for (templated), typically the create operator's XCom.
    :param veo_conn_id: the ``veo`` connection.
    """

    template_fields: Sequence[str] = ("video_id",)
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        video_id: str,
        veo_conn_id: str = "veo_default",
        poke_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.video_id = video_id
        self.veo_conn_id = veo_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    @cached_property
    def hook(self) -> VeoHook:
        from airflow_provider_veo.hooks.veo import VeoHook

        return VeoHook(veo_conn_id=self.veo_conn_id)

    @cached_property
    def _watch(self) -> JobWatch:
        # The sensor machinery enforces the deadline in poke mode; the watch only logs and decides.
        return JobWatch(str(self.video_id), float(self.poke_interval), math.inf, self.log)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise AirflowSensorTimeout(
                    f"{exc} Video {self.video_id} did not finish before the deadline; "
                    "the job may still be running."
                ) from exc
        if done := self.poke(context):
            return done.xcom_value
        from airflow_provider_veo.triggers.veo import VeoTaskTrigger

        self.defer(
            trigger=VeoTaskTrigger(
                video_id=str(self.video_id),
                veo_conn_id=self.veo_conn_id,
                poll_interval=float(self.poke_interval),
                end_time=time.time() + float(self.timeout),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) + DEFERRAL_GRACE,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        with task_outcomes():
            outcome: VideoJob | api.VeoTransientError
            try:
                outcome = self.hook.get_video(str(self.video_id))
            except api.VeoTransientError as exc:
                outcome = exc
            step = self._watch.after_poll(outcome)
            if not isinstance(step, dict):
                return PokeReturnValue(is_done=False)
            return PokeReturnValue(is_done=True, xcom_value=api.job_from_event(step).to_dict())

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: the job's dict on success, a failure otherwise."""
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(event.get("message"))
        with task_outcomes():
            job = api.job_from_event(event)
        self.log.info("Video %s is completed", job.video_id)
        return job.to_dict()
