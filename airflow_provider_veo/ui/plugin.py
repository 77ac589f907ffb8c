"""The Airflow plugin behind the "Videos" tabs, registered through the ``airflow.plugins`` entry point.

It adds a "Videos" tab to every DAG run and task instance page of Airflow's UI, each an iframe of
:mod:`airflow_provider_veo.ui.app` (mounted by the api-server under ``/veo``). Set
``[veo] videos_view = False`` (``AIRFLOW__VEO__VIDEOS_VIEW=False``) to leave both the tabs and the
routes out: the plugin then registers nothing.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from starlette.types import Receive, Scope, Send

#: The config option (section, key) that turns the view off.
ENABLED_OPTION = ("veo", "videos_view")


def videos_view_enabled() -> bool:
    """``[veo] videos_view``, true unless set otherwise."""
    from airflow.configuration import conf

    return conf.getboolean(*ENABLED_OPTION, fallback=True)


#: Where the api-server mounts the app.
URL_PREFIX = "/veo"


class _AppOnFirstRequest:
    """The view's ASGI app, imported on its first request.

    Every Airflow process loads plugins (the scheduler, task processes, the DAG processor); only the
    api-server ever calls this, and importing the app and Airflow's API security takes seconds.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from airflow_provider_veo.ui.app import app

        await app(scope, receive, send)


def _fastapi_apps() -> list[dict[str, Any]]:
    return [{"app": _AppOnFirstRequest(), "url_prefix": URL_PREFIX, "name": "Veo videos"}]


def _external_views() -> list[dict[str, Any]]:
    # Relative hrefs: the UI resolves them against its base URL, so a deployment under a path
    # prefix ([api] base_url) works too. The UI fills in the {PLACEHOLDERS} of the page it is on.
    return [
        {
            "name": "Videos",
            "href": "veo/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "veo-videos",
        },
        {
            "name": "Videos",
            "href": "veo/tasks/{DAG_ID}/{TASK_ID}/{MAP_INDEX}/{RUN_ID}",
            "destination": "task_instance",
            "url_route": "veo-task-videos",
        },
    ]


class VeoVideosPlugin(AirflowPlugin):
    """The "Videos" view of a DAG run's (and a task instance's) stored videos."""

    name = "veo_videos"
    fastapi_apps = _fastapi_apps() if videos_view_enabled() else []
    external_views = _external_views() if videos_view_enabled() else []
