"""The "Stored video" extra link: the stored MP4's page in its object store's console or endpoint.

The download and generate operators push, as soon as the destination's file is known (before a
generate task defers), its canonical URI to the XCom ``stored_video_uri`` and its web address to
``stored_video_url``: the AWS S3 console for AWS, the endpoint's own URL of the object for an
S3-compatible store with a custom ``endpoint_url`` (MinIO, SeaweedFS, moto), the Google Cloud
console for GCS, the blob's URL for Azure (from the URI's account, or the connection's), and
nothing for a local file. :class:`~airflow_provider_veo.destinations.Destination` decides which.
At the end of every run of the task process (success, failure or deferral) the Task SDK calls
:meth:`VeoStoredVideoLink.get_link` and stores the URL under the link's own XCom key, which the UI
reads: the task instance's "Stored video" button (in the grid's task instance view, with the other
extra links). A task that never got that far shows no link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

__all__ = ["STORED_VIDEO_URI_XCOM_KEY", "STORED_VIDEO_URL_XCOM_KEY", "VeoStoredVideoLink"]

#: The XCom the operators push the destination's canonical URI to.
STORED_VIDEO_URI_XCOM_KEY = "stored_video_uri"
#: The XCom the operators push the link's URL to (``""`` for none), and the link reads.
STORED_VIDEO_URL_XCOM_KEY = "stored_video_url"


class VeoStoredVideoLink(BaseOperatorLink):
    """Operator extra link "Stored video": where the stored MP4 can be seen in a browser.

    Attach it with ``operator_extra_links = (VeoStoredVideoLink(),)``. It reads the XCom
    :data:`STORED_VIDEO_URL_XCOM_KEY`; without it (nothing stored yet, or a task that failed
    before its destination was known), and for a local destination, the link is ``""`` and the UI
    shows none.
    """

    name: ClassVar[str] = "Stored video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=STORED_VIDEO_URL_XCOM_KEY)
        return url if isinstance(url, str) and url.startswith(("https://", "http://")) else ""
