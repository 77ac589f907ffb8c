"""Provider registration: what Airflow's providers manager reads."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest

import airflow_provider_veo
from airflow_provider_veo import CONN_FIELDS, api, get_provider_info
from airflow_provider_veo.api import RetryPolicy
from airflow_provider_veo.hooks.veo import VeoHook


def _distribution() -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution("airflow-provider-veo")
    except importlib.metadata.PackageNotFoundError:
        return None


installed = pytest.mark.skipif(
    _distribution() is None, reason="the provider is not installed in this environment"
)
AIRFLOW_SCHEMAS = Path(importlib.import_module("airflow").__file__ or "").parent


def _airflow(tmp_path: Path, *args: str) -> str:
    """Run the ``airflow`` CLI in a fresh home and return the JSON line of its output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [listing] = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    return listing


def test_package_name_is_the_distribution_name() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-veo"
    assert info["versions"][0] == airflow_provider_veo.__version__
    dist = _distribution()
    if dist is not None and dist.metadata["Name"]:
        assert dist.metadata["Name"].lower().replace("_", "-") == info["package-name"]


def test_connection_type_entry() -> None:
    [entry] = get_provider_info()["connection-types"]
    assert entry["connection-type"] == "veo" == VeoHook.conn_type
    module_name, _, class_name = entry["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module_name), class_name) is VeoHook
    assert entry["hook-name"] == VeoHook.hook_name
    behaviour = entry["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "port", "login", "extra"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}
    assert entry["conn-fields"] == CONN_FIELDS


def test_conn_fields_are_the_extra_options_the_hook_reads() -> None:
    """Names, types, defaults and minimums of the form agree with what the hook does without them."""
    schemas = {name: field["schema"] for name, field in CONN_FIELDS.items()}
    assert schemas == {
        "timeout": {"type": "number", "default": api.DEFAULT_REQUEST_TIMEOUT, "minimum": 1},
        "create_timeout": {"type": "number", "default": api.DEFAULT_CREATE_TIMEOUT, "minimum": 1},
        "max_retries": {"type": "integer", "default": RetryPolicy.max_attempts - 1, "minimum": 0},
        "retry_base_delay": {"type": "number", "default": RetryPolicy.base_delay, "minimum": 0},
        "download_timeout": {"type": "number", "default": api.DEFAULT_DOWNLOAD_TIMEOUT, "minimum": 1},
        "max_download_bytes": {"type": "integer", "default": api.DEFAULT_MAX_DOWNLOAD_BYTES, "minimum": 1},
    }
    for field in CONN_FIELDS.values():
        assert field["label"] and field["description"]


def test_conn_fields_follow_airflows_schema() -> None:
    """The ``conn-fields`` part of the installed Airflow's provider.yaml schema (3.2+), which is
    stricter than the runtime provider_info schema; the whole provider info against the latter."""
    jsonschema = pytest.importorskip("jsonschema")
    runtime = json.loads((AIRFLOW_SCHEMAS / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), runtime)
    yaml_schema = json.loads((AIRFLOW_SCHEMAS / "provider.yaml.schema.json").read_text())
    connection = yaml_schema["properties"]["connection-types"]["items"]
    if not _airflow_knows_conn_fields():
        pytest.skip("this Airflow (before 3.2) knows no conn-fields")
    [entry] = get_provider_info()["connection-types"]
    jsonschema.validate(entry, connection)


@installed
def test_the_form_shows_the_extra_options(tmp_path: Path) -> None:
    """What the UI's connection form gets for ``veo``: from ``conn-fields`` on Airflow 3.2+, from the
    hook's ``get_connection_form_widgets()`` on 3.1 (integer fields there, which may be left empty)."""
    if not _airflow_knows_conn_fields() and not _hook_returns_widgets():
        pytest.skip("Airflow 3.1 builds the form from VeoHook.get_connection_form_widgets(), still empty")
    script = (
        "import json\n"
        "from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService\n"
        "[veo] = [m for m in HookMetaService.hook_meta_data() if m.connection_type == 'veo']\n"
        "hidden = sorted(name for name, field in veo.standard_fields or {} if field and field.hidden)\n"
        "print(json.dumps({'extra': veo.extra_fields, 'hidden': hidden}, default=str))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    form = json.loads(result.stdout.strip().splitlines()[-1])
    assert form["hidden"] == ["login", "port", "url_schema"]
    fields = form["extra"]
    assert list(fields) == list(CONN_FIELDS)
    for name, field in CONN_FIELDS.items():
        assert fields[name]["value"] == field["schema"]["default"], name
        assert fields[name]["schema"]["title"] == field["label"], name
        assert fields[name]["description"] == field["description"], name
        if "minimum" in fields[name]["schema"]:  # 3.2+: the declared schema as it is
            assert fields[name]["schema"]["minimum"] == field["schema"]["minimum"], name
            assert fields[name]["schema"]["type"] == field["schema"]["type"], name


def _airflow_knows_conn_fields() -> bool:
    schema = json.loads((AIRFLOW_SCHEMAS / "provider.yaml.schema.json").read_text())
    return "conn-fields" in schema["properties"]["connection-types"]["items"]["properties"]


def _wtforms_stand_in() -> ModuleType:
    """WTForms as Airflow 3.1's UI stands in for it: fields that only record how they were made."""
    stand_in = ModuleType("wtforms")
    stand_in.IntegerField = lambda *args, **kwargs: (args, kwargs)  # type: ignore[attr-defined]
    return stand_in


def _hook_returns_widgets() -> bool:
    """Whether the hook hands Airflow 3.1 the fields."""
    with mock.patch.dict(sys.modules, {"wtforms": _wtforms_stand_in()}):
        return bool(VeoHook.get_connection_form_widgets())


def test_connection_form_widgets_for_airflow_3_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wtforms", _wtforms_stand_in())
    made = airflow_provider_veo.connection_form_widgets()
    assert list(made) == list(CONN_FIELDS)
    for name, (args, kwargs) in made.items():
        field = CONN_FIELDS[name]
        assert args == (field["label"],)
        assert kwargs == {"description": field["description"], "default": field["schema"]["default"]}


def test_provider_info_agrees_with_the_hook() -> None:
    [entry] = get_provider_info()["connection-types"]
    hook_behaviour = VeoHook.get_ui_field_behaviour()
    assert entry["ui-field-behaviour"]["hidden-fields"] == hook_behaviour["hidden_fields"]
    assert entry["ui-field-behaviour"]["relabeling"] == hook_behaviour["relabeling"]


@pytest.mark.parametrize("section", ["hooks", "operators", "sensors", "triggers"])
def test_declared_modules_import(section: str) -> None:
    declared = get_provider_info()[section]
    modules = [module for entry in declared for module in entry["python-modules"]]
    assert modules
    for module in modules:
        importlib.import_module(module)


def test_declared_trigger_module_holds_the_trigger() -> None:
    from airflow_provider_veo.triggers.veo import VeoTaskTrigger

    [entry] = get_provider_info()["triggers"]
    classpath = VeoTaskTrigger(video_id="x", end_time=0).serialize()[0]
    assert classpath.rpartition(".")[0] in entry["python-modules"]


def test_provider_info_is_json() -> None:
    info = get_provider_info()
    assert json.loads(json.dumps(info)) == info
    integrations = {i["integration-name"] for i in info["integrations"]}
    for section in ("hooks", "operators", "sensors", "triggers"):
        assert {entry["integration-name"] for entry in info[section]} <= integrations


@installed
def test_entry_point_registered() -> None:
    entry_points = importlib.metadata.entry_points(group="apache_airflow_provider")
    [ours] = [ep for ep in entry_points if ep.value.startswith("airflow_provider_veo")]
    assert ours.load()()["package-name"] == "airflow-provider-veo"


@installed
def test_airflow_providers_list_shows_it(tmp_path: Path) -> None:
    providers = {p["package_name"]: p for p in json.loads(_airflow(tmp_path, "providers", "list"))}
    assert "airflow-provider-veo" in providers, sorted(providers)
    assert providers["airflow-provider-veo"]["version"] == airflow_provider_veo.__version__


@installed
def test_airflow_providers_get_shows_the_documentation_url_and_the_link(tmp_path: Path) -> None:
    """Airflow takes the documentation URL from the distribution's ``Project-URL: Documentation``."""
    [info] = json.loads(_airflow(tmp_path, "providers", "get", "airflow-provider-veo", "--full"))
    dist = _distribution()
    assert dist is not None
    urls = dict(entry.split(", ", 1) for entry in dist.metadata.get_all("Project-URL") or [])
    assert info["documentation-url"].strip() == urls["Documentation"]
    assert info["extra-links"] == ["airflow_provider_veo.links.VeoStoredVideoLink"]
    [connection] = info["connection-types"]
    assert list(connection["conn-fields"]) == list(CONN_FIELDS)


@installed
def test_the_providers_manager_loads_the_link() -> None:
    """What ``airflow providers links`` lists: the class imports from the declared path."""
    from airflow.providers_manager import ProvidersManager

    assert "airflow_provider_veo.links.VeoStoredVideoLink" in ProvidersManager().extra_links_class_names


@installed
def test_published_metadata() -> None:
    """What `pip install airflow-provider-veo` brings: no cap on Airflow, no development tools, no
    pytest plugin loaded into every session, the license files and the type marker."""
    dist = _distribution()
    assert dist is not None
    requires = dist.requires or []
    [airflow] = [r for r in requires if r.startswith("apache-airflow") and "provider" not in r]
    assert airflow.replace(" ", "") == "apache-airflow>=3.1.0"
    tools = ("pytest", "ruff", "mypy", "playwright", "requests-mock", "build")
    assert not [r for r in requires if r.split(";")[0].split(">")[0].split("=")[0].strip() in tools]
    assert sorted(dist.metadata.get_all("Provides-Extra") or []) == ["azure", "gcs", "openlineage", "s3"]
    assert not [ep for ep in dist.entry_points if ep.group == "pytest11"]
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    assert sorted(dist.metadata.get_all("License-File") or []) == ["LICENSE", "NOTICE"]
    assert {"Documentation", "Source", "Changelog", "Issues"} <= {
        entry.split(",", 1)[0] for entry in dist.metadata.get_all("Project-URL") or []
    }
    assert (Path(airflow_provider_veo.__file__).parent / "py.typed").is_file()
