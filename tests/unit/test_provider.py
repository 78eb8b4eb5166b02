"""The `zuora` connection type: provider info, discovery by Airflow, the form, and the Test button.

Needs the project installed (`make venv` does `pip install -e . --no-deps`): Airflow finds
providers only through installed entry points."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from zuora_etl.hooks.zuora import ZuoraHook
from zuora_etl.provider import DATA_CENTERS, get_provider_info

from include.zuora_emulator import Emulator


@pytest.fixture(scope="module")
def tiny():
    with Emulator(scale="tiny", seed=1) as emu:
        yield emu


@pytest.fixture(scope="module")
def installed():
    try:
        dist = distribution("zuora-etl")
    except PackageNotFoundError:
        pytest.fail("the project is not installed: run `make venv` (or `.venv/bin/pip install -e . --no-deps`)")
    points = [e for e in dist.entry_points if e.group == "apache_airflow_provider"]
    assert [e.value for e in points] == ["zuora_etl.provider:get_provider_info"]
    return dist


def test_provider_info_is_valid_for_airflow(installed):
    from airflow.providers_manager import _create_provider_info_schema_validator

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)
    assert info["package-name"] == installed.metadata["Name"]  # Airflow refuses a mismatch
    assert info["connection-types"][0]["hook-class-name"] == "zuora_etl.hooks.zuora.ZuoraHook"
    assert info["connection-types"][0]["connection-type"] == ZuoraHook.conn_type == "zuora"


# Airflow 3.3 forwards ProvidersManager().hooks (what Connection.get_hook and the Test button use) to
# the Task SDK's ProvidersManagerTaskRuntime, with a deprecation warning: both must resolve `zuora`.
@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
@pytest.mark.parametrize("manager", ["airflow.providers_manager.ProvidersManager",
                                     "airflow.sdk.providers_manager_runtime.ProvidersManagerTaskRuntime"])  # fmt: skip
def test_airflow_resolves_the_zuora_type_to_the_hook(installed, manager):
    from airflow.sdk._shared.module_loading import import_string

    hooks = import_string(manager)().hooks
    hook = hooks["zuora"]
    assert hook is not None and hook.hook_class_name == "zuora_etl.hooks.zuora.ZuoraHook"
    assert hook.connection_testable and hook.connection_id_attribute_name == "zuora_conn_id"
    assert hook.hook_name == "Zuora"
    assert hooks["http"].hook_class_name.endswith("HttpHook")  # http connections stay HTTP's


def test_the_connection_form_offers_data_centers_and_a_free_url(installed):
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}["zuora"]
    assert meta.hook_name == "Zuora"
    fields = meta.standard_fields
    assert fields.host.title.startswith("REST base URL") and not fields.host.hidden  # free URL
    assert fields.login.title == "Client ID" and fields.password.title == "Client secret"
    assert fields.port.hidden and fields.url_schema.hidden
    center = meta.extra_fields["data_center"]["schema"]
    assert center["enum"] == [None, *DATA_CENTERS]
    assert "https://rest.na.zuora.com" in center["enum"] and "https://rest.sandbox.eu.zuora.com" in center["enum"]
    assert "entity_id" in meta.extra_fields


def conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "zuora", **fields}))


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_test_button_succeeds_for_a_zuora_connection_to_the_emulator(installed, tiny, monkeypatch):
    from airflow.models.connection import Connection

    conn(monkeypatch, "zuora_ui", host=tiny.base_url, login="demo-client", password="demo-secret")
    connection = Connection.get_connection_from_secrets("zuora_ui")
    assert isinstance(connection.get_hook(), ZuoraHook)
    ok, message = connection.test_connection()
    assert ok, message
    assert tiny.base_url in message


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_test_button_fails_clearly_without_the_secret(installed, tiny, monkeypatch):
    from airflow.models.connection import Connection

    conn(monkeypatch, "zuora_ui", host=tiny.base_url, login="demo-client", password="s3cr3t-wrong")
    ok, message = Connection.get_connection_from_secrets("zuora_ui").test_connection()
    assert not ok and "HTTP 401" in message and "client id and secret" in message
    assert "s3cr3t-wrong" not in message


def test_a_data_center_stands_for_the_host(monkeypatch):
    conn(monkeypatch, "zuora_dc", login="id", password="pw", extra={"data_center": "https://rest.eu.zuora.com"})
    hook = ZuoraHook("zuora_dc")
    hook.get_conn()
    assert hook.base_url == "https://rest.eu.zuora.com"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extra": {"data_center": "https://collector.example.com"}}, "not one of Zuora's REST base URLs"),
        ({"host": "http://127.0.0.1:1", "extra": {"data_center": "https://rest.na.zuora.com"}}, "keep one"),
        ({}, "has no REST base URL"),
    ],
)
def test_a_doubtful_base_url_is_refused_before_any_call(monkeypatch, fields, message):
    conn(monkeypatch, "zuora_dc", login="id", password="s3cr3t", **fields)
    ok, text = ZuoraHook("zuora_dc").test_connection()
    assert not ok and message in text and "s3cr3t" not in text


def test_http_connections_keep_working(tiny, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_HTTP", json.dumps({
        "conn_type": "http", "host": tiny.base_url, "login": "demo-client", "password": "demo-secret",
    }))  # fmt: skip
    ok, message = ZuoraHook("zuora_http").test_connection()
    assert ok, message


def test_a_connection_without_a_usable_base_url_fails_the_task_at_once(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException
    from zuora_etl.errors import fail_fast

    conn(monkeypatch, "zuora_dc", login="id", password="s3cr3t")
    with pytest.raises(AirflowFailException, match="has no REST base URL"), fail_fast():
        ZuoraHook("zuora_dc").get_conn()
