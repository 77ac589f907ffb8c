"""Wait for a Veo job to finish, in poke mode or deferred to the triggerer."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_veo import api
from airflow_provider_veo.api import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, JobWatch, arguments
from airflow_provider_veo.compat import AirflowSensorTimeout, AirflowSkipException
from airflow_provider_veo.config import default_deferrable, min_poll_interval
from airflow_provider_veo.hooks import VeoHookMixin
from airflow_provider_veo.outcomes import checked_when_defined, is_unrendered, task_outcomes
from airflow_provider_veo.polling import poll_once
from airflow_provider_veo.waiting import defer_to_trigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class VeoTaskSensor(VeoHookMixin, BaseSensorOperator):
    """Succeed when the video is ``completed``; fail without retrying when it is ``failed`` or ``error``.

    The completed job (status, ``video_url``, model, seconds, size) is its XCom return value. With
    ``deferrable=True`` it checks once, then waits in
    :class:`~airflow_provider_veo.triggers.veo.VeoTaskTrigger` and holds no worker slot.

    :param video_id: the job to wait for (templated), typically the create operator's XCom.
    :param veo_conn_id: the ``veo`` connection.
    :param poke_interval: seconds between status reads, 1 (the floor, ``[veo] min_poll_interval``) to 3600.
    :param timeout: seconds to wait, more than 0 and at most a week; ``None`` is an hour.
    :param visibility_grace: seconds (0 to 3600) from the sensor's start during which "not found" is
        taken as a job created moments ago that the API has not stored yet.
    """

    template_fields: Sequence[str] = ("video_id",)
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        video_id: str,
        veo_conn_id: str = "veo_default",
        poke_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TIMEOUT,
        deferrable: bool | None = None,
        visibility_grace: float = api.DEFAULT_VISIBILITY_GRACE,
        **kwargs: Any,
    ) -> None:
        # Checked below: a mapped sensor defined again in the worker keeps a refusal for execute().
        super().__init__(poke_interval=DEFAULT_POLL_INTERVAL, timeout=DEFAULT_TIMEOUT, **kwargs)
        self.video_id = video_id
        self.veo_conn_id = veo_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.visibility_grace = visibility_grace
        with checked_when_defined(self):
            self.poke_interval = arguments.poll_interval(
                "poke_interval", poke_interval, floor=min_poll_interval()
            )
            self.timeout = arguments.timeout("timeout", timeout)
            self._check_arguments(rendered=False)

    def _check_arguments(self, *, rendered: bool = True) -> None:
        """When defined, and again once rendered, before the first read: ``video_id`` may come from a
        template or an XCom."""
        if rendered or not is_unrendered(self.video_id):
            arguments.video_id("video_id", self.video_id)
        arguments.poll_interval("poke_interval", self.poke_interval, floor=min_poll_interval())
        arguments.timeout("timeout", self.timeout)
        self.deferrable = arguments.switch("deferrable", self.deferrable)
        self.visibility_grace = arguments.visibility_grace(self.visibility_grace)

    @cached_property
    def _visible_by(self) -> float:
        # From the first poke of this try: the sensor starts moments after the create it waits for.
        return time.time() + float(self.visibility_grace)

    @cached_property
    def _watch(self) -> JobWatch:
        # The sensor machinery enforces the deadline in poke mode; the watch only logs and decides.
        return JobWatch(
            str(self.video_id), float(self.poke_interval), math.inf, self.log, visible_by=self._visible_by
        )

    def execute(self, context: Context) -> Any:
        with task_outcomes(self):
            self._check_arguments()
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise AirflowSensorTimeout(
                    f"{exc} Video {api.shown(str(self.video_id))} did not finish before the deadline; "
                    "the job may still be running."
                ) from exc
        if done := self.poke(context):
            return done.xcom_value
        defer_to_trigger(
            self,
            context,
            video_id=str(self.video_id),
            veo_conn_id=self.veo_conn_id,
            poll_interval=float(self.poke_interval),
            timeout=float(self.timeout),
            visible_by=self._visible_by,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        with task_outcomes():
            step = self._watch.after_poll(poll_once(self.hook, str(self.video_id)))
            if not isinstance(step, dict):
                return PokeReturnValue(is_done=False)
            return PokeReturnValue(is_done=True, xcom_value=api.job_from_event(step).to_dict())

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: the job's dict on success, a failure otherwise."""
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(event.get("message"))
        if event.get("status") == "failed" and self.soft_fail:
            raise AirflowSkipException(event.get("message"))  # as poke mode does with soft_fail
        with task_outcomes():
            job = api.job_from_event(event)
        self.log.info("Video %s is completed", api.shown(job.video_id))
        return job.to_dict()
