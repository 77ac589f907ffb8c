"""Apache Airflow provider for Google Veo 3.1 video generation through CometAPI."""

from __future__ import annotations

import copy
import importlib
from typing import Any

__version__ = "0.1.0"

#: How the connection form looks; shared by the provider info (Airflow 3.2+) and the hook (3.1).
#: "extra" is hidden: its options are the fields of :data:`CONN_FIELDS`, which the form stores in the
#: extra JSON under their own names (Airflow 3's UI keeps its "Extra Fields JSON" editor regardless).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "login", "extra"],
    "relabeling": {"host": "Base URL", "password": "API Key"},
    "placeholders": {"host": "https://api.cometapi.com", "password": "sk-..."},
}

#: The connection's extra options as ``conn-fields`` (Airflow 3.2+ builds the form from them). The
#: UI stores each in the extra JSON under its name, the keys the hook reads; the defaults are the
#: hook's own (``api.DEFAULT_REQUEST_TIMEOUT``, ``api.DEFAULT_CREATE_TIMEOUT``, ``RetryPolicy``,
#: ``api.DEFAULT_DOWNLOAD_TIMEOUT``, ``api.DEFAULT_MAX_DOWNLOAD_BYTES``).
#: Types without "null" make the form require a value, so a cleared field cannot be saved as null.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Read timeout (seconds)",
        "description": "Seconds to wait for each read of an answer, a job's status or the video's bytes.",
        "schema": {"type": "number", "default": 60, "minimum": 1},
    },
    "create_timeout": {
        "label": "Create timeout (seconds)",
        "description": (
            "Seconds to wait for the answer to a create request (POST /v1/videos); "
            "the gateway can take minutes to accept a job."
        ),
        "schema": {"type": "number", "default": 300, "minimum": 1},
    },
    "max_retries": {
        "label": "Max retries",
        "description": (
            "Retries of a request that failed transiently (connection reset, 429, 5xx), "
            "with exponential backoff; a create is retried only when its answer proves no job was made."
        ),
        "schema": {"type": "integer", "default": 4, "minimum": 0},
    },
    "retry_base_delay": {
        "label": "Retry base delay (seconds)",
        "description": "The first backoff's upper bound; each retry doubles it (jittered, capped).",
        "schema": {"type": "number", "default": 1, "minimum": 0},
    },
    "download_timeout": {
        "label": "Download timeout (seconds)",
        "description": (
            "Seconds a whole video download may take, however slowly the server sends it; "
            "past it the download fails and the task can retry."
        ),
        "schema": {"type": "number", "default": 1800, "minimum": 1},
    },
    "max_download_bytes": {
        "label": "Max video size (bytes)",
        "description": (
            "The largest video a download accepts (a Veo clip is 5-100 MB); a larger one is refused "
            "before it fills the disk."
        ),
        "schema": {"type": "integer", "default": 4294967296, "minimum": 1},
    },
}


def connection_form_widgets() -> dict[str, Any]:
    """:data:`CONN_FIELDS` as the WTForms fields Airflow 3.1 reads from ``get_connection_form_widgets()``.

    Airflow 3.1's UI turns them into form fields with WTForms (or its stand-ins for it when WTForms
    is not installed) patched in, so ``wtforms`` is looked up at call time. 3.1 renders integer
    fields, which may be left empty (the hook then uses the default), and knows no minimums;
    fractional seconds remain possible through the extra JSON. 3.2+ does not call this: it reads
    ``conn-fields`` from the provider info.
    """
    wtforms = importlib.import_module("wtforms")
    return {
        name: wtforms.IntegerField(
            field["label"], description=field["description"], default=field["schema"]["default"]
        )
        for name, field in CONN_FIELDS.items()
    }


def __getattr__(name: str) -> Any:
    """:func:`videos_from_events`, imported on first use so that provider discovery stays cheap."""
    if name == "videos_from_events":
        from airflow_provider_veo.publishing import videos_from_events

        return videos_from_events
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's providers manager (the ``apache_airflow_provider`` entry point)."""
    integration = "CometAPI Veo"
    return {
        "package-name": "airflow-provider-veo",
        "name": integration,
        "description": "Generate videos with Google Veo 3.1 through CometAPI's `/v1/videos` API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://apidoc.cometapi.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": integration, "python-modules": ["airflow_provider_veo.hooks.veo"]}],
        "operators": [
            {
                "integration-name": integration,
                "python-modules": [
                    "airflow_provider_veo.operators.veo",
                    "airflow_provider_veo.operators.summary",
                ],
            }
        ],
        "sensors": [
            {"integration-name": integration, "python-modules": ["airflow_provider_veo.sensors.veo"]}
        ],
        "triggers": [
            {"integration-name": integration, "python-modules": ["airflow_provider_veo.triggers.veo"]}
        ],
        "extra-links": ["airflow_provider_veo.links.VeoStoredVideoLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_veo.hooks.veo.VeoHook",
                "hook-name": integration,
                "connection-type": "veo",
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": {
                    "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
                    "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
                    "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
                },
            }
        ],
        "config": {
            "veo": {
                "description": "Settings of the CometAPI Veo provider for the whole deployment.",
                "options": {
                    "min_poll_interval": {
                        "description": "The shortest poll_interval / poke_interval a task may ask for, in "
                        "seconds: each status read is a request against the account's rate limit. Lower it "
                        "only where jobs finish in a fraction of a second, as against the emulator.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "0.01",
                        "default": "1.0",
                    }
                },
            }
        },
    }
