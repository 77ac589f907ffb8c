"""The videos a DAG run recorded: the StoredVideo results its tasks pushed as ``return_value`` XCom.

This is the only source of locations the view serves: a request names a run and a task instance,
never a path, and gets only what that task instance itself returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from airflow_provider_veo.api.results import StoredVideo

#: The fields that make a task's result a stored video; the rest are read with defaults.
_REQUIRED: dict[str, type | tuple[type, ...]] = {"video_id": str, "uri": str, "bytes": int, "sha256": str}


@dataclass(frozen=True)
class RecordedVideo:
    """One stored video and the task instance that recorded it."""

    task_id: str
    map_index: int
    #: The task instance's rendered ``map_index_template`` (its label in Airflow's UI), if any.
    label: str | None
    #: When the task pushed its result.
    stored_at: datetime
    video: StoredVideo


def as_stored_video(value: Any) -> StoredVideo | None:
    """The XCom value as a StoredVideo, or ``None`` when it is not one.

    The metadata DB holds the task's JSON either parsed or as text, depending on the Airflow version
    and database; any other return value (a video id, a summary's rows) is not a video.
    """
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    for name, kind in _REQUIRED.items():
        if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
            return None
    return cast("StoredVideo", value)


def recorded_videos(
    dag_id: str, run_id: str, *, task_id: str | None = None, map_index: int | None = None
) -> list[RecordedVideo]:
    """The stored videos of a DAG run (or of one of its task instances), by task and map index.

    One short session: the view streams after this returns, without holding a DB connection.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import and_, select

    ti = TaskInstance.__table__.c
    query = (
        select(
            XComModel.task_id,
            XComModel.map_index,
            XComModel.timestamp,
            XComModel.value,
            ti.rendered_map_index,
        )
        .outerjoin(
            TaskInstance.__table__,
            and_(
                ti.dag_id == XComModel.dag_id,
                ti.run_id == XComModel.run_id,
                ti.task_id == XComModel.task_id,
                ti.map_index == XComModel.map_index,
            ),
        )
        .where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value")
        .order_by(XComModel.task_id, XComModel.map_index)
    )
    if task_id is not None:
        query = query.where(XComModel.task_id == task_id)
    if map_index is not None:
        query = query.where(XComModel.map_index == map_index)
    with create_session() as session:
        rows = session.execute(query).all()
    found = []
    for task, index, timestamp, value, label in rows:
        video = as_stored_video(value)
        if video is not None:
            found.append(RecordedVideo(task, index, label, timestamp, video))
    return found
