"""Apache Airflow provider for Google Veo 3.1 video generation through CometAPI."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: How the connection form looks; shared by the provider info (Airflow 3.2+) and the hook (3.1).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "login", "extra"],
    "relabeling": {"host": "Base URL", "password": "API Key"},
    "placeholders": {"host": "https://api.cometapi.com", "password": "sk-..."},
}


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
            {"integration-name": integration, "python-modules": ["airflow_provider_veo.operators.veo"]}
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
                "conn-fields": {},
                "ui-field-behaviour": {
                    "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
                    "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
                    "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
                },
            }
        ],
    }
