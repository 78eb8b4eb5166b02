"""Preflight against the emulator over loopback: green on the shipped configuration, and each kind
of problem named (token, custom fields, disabled objects, filters, mappings, rate limit)."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from zuora_etl.families import load_families
from zuora_etl.hooks.zuora import ZuoraHook
from zuora_etl.preflight import (
    ENDPOINT_INVALID,
    MAPPING_INVALID,
    MISSING_CUSTOM_FIELDS,
    NOT_ENABLED,
    OK,
    REFUSED,
    TARGET_REFUSED,
    calls_per_run,
    main,
    preflight,
    probe_filters,
    rate_limit_check,
    runs_per_day,
)

from include.zuora_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
SECRET = "demo-secret"


def emulator_supports(option: str) -> bool:
    return option in inspect.signature(Emulator).parameters


@pytest.fixture(scope="module")
def tiny():
    with Emulator(scale="tiny", seed=1) as emu:
        yield emu


def use(monkeypatch, emu: Emulator, secret: str = SECRET, conn_type: str = "http") -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": conn_type, "host": emu.base_url, "login": "demo-client", "password": secret,
        "extra": {"max_attempts": 2, "backoff_seconds": 0.01},
    }))  # fmt: skip


def copy_config(tmp_path: Path) -> Path:
    """A private copy of the families and mappings; returns the families directory."""
    shutil.copytree(ROOT / "include" / "families", tmp_path / "families")
    shutil.copytree(ROOT / "include" / "mappings", tmp_path / "mappings")
    return tmp_path / "families"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def rows_by_key(report) -> dict[tuple[str, str], object]:
    return {(r.family, r.object): r for r in report.rows}


def test_shipped_configuration_is_green_against_the_emulator(tiny, monkeypatch):
    use(monkeypatch, tiny)
    report = preflight()
    assert report.connection_ok, report.connection_line()
    assert not report.problems, report.render()
    expected = {(f.family, o.name) for f in load_families() for o in f.objects}
    assert set(rows_by_key(report)) == expected
    assert report.ok and report.as_dict()["ok"]
    text = report.render()
    assert "crm_accounts" in text and "erp_memos" in text and text.splitlines()[-1].startswith("OK")


def test_one_record_per_object_with_the_syncs_fields_and_filters(tiny, monkeypatch):
    use(monkeypatch, tiny)
    sent = []
    original = ZuoraHook.request

    def spy(self, method, path, *, params=None, json=None):
        sent.append((path, params))
        return original(self, method, path, params=params, json=json)

    monkeypatch.setattr(ZuoraHook, "request", spy)
    report = preflight()
    assert report.ok
    assert len(sent) == len(report.rows) == report.api_calls  # one call per object when all is well
    by_path = {}
    for path, params in sent:
        by_path.setdefault(path, []).append(params)
    for params_list in by_path.values():
        for params in params_list:
            assert ("pageSize", "1") in params and ("sort[]", "updatedDate.ASC") in params
    erp_invoices = [p for p in by_path["/object-query/invoices"] if ("filter[]", "status.EQ:Posted") in p]
    assert erp_invoices and "transferredToAccounting" in dict(erp_invoices[0])["fields[]"].split(",")
    assert any(k == "filter[]" and v.startswith("updatedDate.GE:") for k, v in erp_invoices[0])
    items = by_path["/object-query/invoice-items"]
    assert any(("filter[]", f"invoiceId.IN:[{'0' * 32}]") in p for p in items)


def test_window_and_parent_filters_have_the_syncs_shape():
    family = {f.family: f for f in load_families()}["erp_invoices"]
    now = datetime(2025, 3, 9, 10, 30, 5, tzinfo=UTC)
    base, own = probe_filters(family.get("invoices"), now)
    assert base == ["updatedDate.GE:2025-03-08T10:30:05Z", "updatedDate.LT:2025-03-09T10:30:05Z"]
    assert own == ["status.EQ:Posted"]
    base, own = probe_filters(family.get("invoice_items"), now)
    assert base == [f"invoiceId.IN:[{'0' * 32}]"] and own == []


def test_wrong_secret_fails_with_a_clear_line_and_never_shows_the_secret(tiny, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    use(monkeypatch, tiny, secret="s3cr3t-wrong")
    report = preflight()
    assert not report.ok and not report.connection_ok and not report.rows
    line = report.connection_line()
    assert "FAILED" in line and "client id and secret" in line and "zuora_default" in line
    everything = report.render() + json.dumps(report.as_dict()) + report.summary() + caplog.text
    assert "s3cr3t-wrong" not in everything


def test_a_misspelled_custom_field_is_named_as_missing(tiny, monkeypatch, tmp_path):
    use(monkeypatch, tiny)
    families = copy_config(tmp_path)
    edit(tmp_path / "mappings" / "accounts.yaml", "source: crmAccountId__c", "source: crmAcountId__c")
    report = preflight(families_directory=families)
    rows = rows_by_key(report)
    accounts = rows[("crm_accounts", "accounts")]
    assert accounts.status == MISSING_CUSTOM_FIELDS, report.render()
    assert "crmAcountId__c" in accounts.detail and "erpAccountId__c" not in accounts.detail
    assert [r for r in report.rows if not r.ok] == [accounts]
    assert not report.ok and "crm_accounts.accounts: missing custom fields" in report.summary()


@pytest.mark.skipif(not emulator_supports("disabled_objects"), reason="emulator has no disabled_objects option yet")
def test_names_both_problems_disabled_orders_and_a_missing_custom_field(monkeypatch, tmp_path):
    families = copy_config(tmp_path)
    edit(tmp_path / "mappings" / "accounts.yaml", "source: crmAccountId__c", "source: crmAcountId__c")
    disabled = ["orders", "order-actions", "order-line-items"]
    with Emulator(scale="tiny", seed=1, disabled_objects=disabled) as emu:
        use(monkeypatch, emu)
        report = preflight(families_directory=families)
    rows = rows_by_key(report)
    for name in ("orders", "order_actions", "order_line_items"):
        assert rows[("crm_orders", name)].status == NOT_ENABLED, report.render()
    assert rows[("crm_accounts", "accounts")].status == MISSING_CUSTOM_FIELDS
    assert "crmAcountId__c" in rows[("crm_accounts", "accounts")].detail
    assert {(r.family, r.object) for r in report.problems} == {
        ("crm_orders", "orders"), ("crm_orders", "order_actions"), ("crm_orders", "order_line_items"),
        ("crm_accounts", "accounts"),
    }  # fmt: skip
    assert not report.ok


@pytest.mark.skipif(not emulator_supports("custom_fields"), reason="emulator has no custom_fields option yet")
def test_a_tenant_without_the_custom_fields(monkeypatch):
    with Emulator(scale="tiny", seed=1, custom_fields=False) as emu:
        use(monkeypatch, emu)
        report = preflight()
    accounts = rows_by_key(report)[("crm_accounts", "accounts")]
    assert accounts.status == MISSING_CUSTOM_FIELDS, report.render()
    assert "crmAccountId__c" in accounts.detail and "erpAccountId__c" in accounts.detail


def test_a_refused_filter_is_named(tiny, monkeypatch, tmp_path):
    use(monkeypatch, tiny)
    families = copy_config(tmp_path)
    before = 'deliver_if: ["status.EQ:Processed"]\n    mark_transferred: true\n  - name: refunds'
    edit(
        families / "erp_payments.yaml",
        before,
        before.replace('"status.EQ:Processed"', '"status.EQ:Processed", "amount.GE:1"', 1),
    )
    report = preflight(families_directory=families)
    payments = rows_by_key(report)[("erp_payments", "payments")]
    assert payments.status == REFUSED, report.render()
    assert "amount.GE:1" in payments.detail and "status.EQ:Processed" not in payments.detail.split(":")[0]
    assert [r for r in report.rows if not r.ok] == [payments]


def test_an_invalid_mapping_is_a_row_not_a_crash(tiny, monkeypatch, tmp_path):
    use(monkeypatch, tiny)
    families = copy_config(tmp_path)
    edit(tmp_path / "mappings" / "refunds.yaml", "columns:\n", "columns:\n  payment_id: {source: paymentId}\n")
    report = preflight(families_directory=families)
    refunds = rows_by_key(report)[("erp_payments", "refunds")]
    assert refunds.status == MAPPING_INVALID
    assert "refunds.yaml" in refunds.detail and "paymentId" in refunds.detail
    assert rows_by_key(report)[("erp_payments", "payments")].status == OK


def test_an_invalid_family_file_is_a_row_not_a_crash(tiny, monkeypatch, tmp_path):
    use(monkeypatch, tiny)
    families = copy_config(tmp_path)
    edit(families / "crm_orders.yaml", "  - name: orders", "  - name: orderz")
    report = preflight(families_directory=families)
    bad = [r for r in report.rows if not r.ok]
    assert [(r.family, r.status) for r in bad] == [("crm_orders", "family invalid")], report.render()
    assert "orderz" in bad[0].detail
    assert rows_by_key(report)[("crm_accounts", "accounts")].ok


def test_the_rate_limit_line_from_the_tenants_headers(monkeypatch):
    with Emulator(scale="tiny", seed=1, rate_limit_per_minute=2_500, concurrency_limit=40) as emu:
        use(monkeypatch, emu)
        report = preflight()
    assert report.rate is not None and report.ok
    assert report.rate.limit_per_minute == 2_500 and report.rate.daily_limit == 10_000
    assert report.rate.concurrency_limit == 40
    assert report.rate.calls_per_day == 960  # see test_calls_the_schedules_need_per_day
    line = report.rate.line()
    assert line.startswith("Rate limit: 2,500 calls/min") and "10,000 calls/day (Zuora's API sandbox tier)" in line
    assert "at least 960 calls/day" in line and "9.6% of the daily limit" in line
    assert line in report.render()


def test_calls_the_schedules_need_per_day():
    families = {f.family: f for f in load_families()}
    assert runs_per_day("*/30 * * * *") == 48 and runs_per_day("0 * * * *") == 24
    assert runs_per_day("0 6 * * 1-5") == pytest.approx(5 / 7) and runs_per_day(None) == 0
    assert calls_per_run(families["crm_subscriptions"]) == 4
    assert calls_per_run(families["erp_memos"]) == 8  # 4 objects, 2 flagged and read back
    check = rate_limit_check({"RateLimit-Limit": "50000"}, families.values())
    assert check.calls_by_family == {"crm_accounts": 96, "crm_invoices": 96, "crm_orders": 144,
                                     "crm_subscriptions": 192, "erp_invoices": 96, "erp_memos": 192,
                                     "erp_payments": 144}  # fmt: skip
    assert check.daily_limit == 27_000_000 and not check.exceeded


def test_a_need_above_the_limit_is_flagged():
    families = load_families()
    check = rate_limit_check({"ratelimit-limit": "0;w=60", "RateLimit-Remaining": "0"}, families)
    assert check.daily_limit == 0 and check.exceeded and "EXCEEDS the daily limit by 960" in check.line()
    unknown = rate_limit_check({}, families)
    assert not unknown.exceeded and "unknown" in unknown.line()


def test_command_line_exit_codes(tiny, monkeypatch, capsys):
    use(monkeypatch, tiny)
    assert main([]) == 0
    assert "OK: preflight ok" in capsys.readouterr().out
    use(monkeypatch, tiny, secret="s3cr3t-wrong")
    assert main(["--conn-id", "zuora_default"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "s3cr3t-wrong" not in out


def test_python_dash_m_runs_with_plugins_on_the_path(tiny, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    env["AIRFLOW_CONN_ZUORA_CHECK"] = json.dumps({"conn_type": "zuora", "host": tiny.base_url, "login": "demo-client",
                                                  "password": "s3cr3t-wrong"})  # fmt: skip
    families = copy_config(tmp_path)
    cmd = [sys.executable, "-m", "zuora_etl.preflight", "--conn-id", "zuora_check", "--families-dir", str(families)]
    failed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert "Connection zuora_check" in failed.stdout and "s3cr3t-wrong" not in failed.stdout + failed.stderr
    env["AIRFLOW_CONN_ZUORA_CHECK"] = env["AIRFLOW_CONN_ZUORA_CHECK"].replace("s3cr3t-wrong", SECRET)
    passed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr[-2000:]
    assert "crm_subscriptions  rate_plan_charge_tiers  ok" in passed.stdout


@pytest.fixture
def erp_api():
    from include.reference_erp import ReferenceErp

    with ReferenceErp() as server:
        yield server


def use_erp_api(monkeypatch, erp_api, password: str = "erp-secret") -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ERP_SINK", json.dumps({
        "conn_type": "http", "host": erp_api.url, "login": "erp", "password": password,
        "extra": {"max_attempts": 1, "health_endpoint": "/api/v1/health"},
    }))  # fmt: skip


def test_a_rest_target_is_asked_once_and_its_endpoints_checked(tiny, monkeypatch, erp_api):
    use(monkeypatch, tiny)
    use_erp_api(monkeypatch, erp_api)
    report = preflight()
    assert report.ok, report.render()
    targets = [r for r in report.rows if r.object == "(zuora_erp_sink)"]
    assert sorted(r.family for r in targets) == ["erp_invoices", "erp_memos", "erp_payments"]
    assert erp_api.stats["requests"] == 1 and not erp_api.documents("invoices")  # asked once, nothing sent


def test_a_rest_target_refusing_the_credentials_is_named_without_the_password(tiny, monkeypatch, erp_api):
    use(monkeypatch, tiny)
    use_erp_api(monkeypatch, erp_api, password="wrong-pass")
    report = preflight()
    refused = [r for r in report.rows if r.status == TARGET_REFUSED]
    assert not report.ok and {r.family for r in refused} == {"erp_invoices", "erp_memos", "erp_payments"}
    assert "wrong-pass" not in report.render()


def test_an_object_without_an_endpoint_file_is_named(tiny, monkeypatch, erp_api, tmp_path):
    use(monkeypatch, tiny)
    use_erp_api(monkeypatch, erp_api)
    families = copy_config(tmp_path)
    shutil.copytree(ROOT / "include" / "endpoints", tmp_path / "endpoints")
    (tmp_path / "endpoints" / "refunds.yaml").unlink()
    monkeypatch.setenv("ZUORA_ETL_INCLUDE_DIR", str(tmp_path))
    report = preflight(families_directory=families)
    [row] = [r for r in report.rows if r.status == ENDPOINT_INVALID]
    assert (row.family, row.object) == ("erp_payments", "refunds") and "refunds.yaml" in row.detail
