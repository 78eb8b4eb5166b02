"""What the task logs show at INFO: one line per Zuora page (object, read, records, Zuora's request
id, our track id) and per loaded or flagged batch, enough to find any page or batch again."""

from __future__ import annotations

import logging
import re

from zuora_etl.settings import PART_ROWS

from tests.unit.operators.test_mark import loaded, mark

LINE = re.compile(r"(\w+)=(\"(?:[^\"\\]|\\.)*\"|\S+)")


def lines(caplog, event: str) -> list[dict[str, str]]:
    out = []
    for rec in caplog.records:
        msg = rec.getMessage()
        if rec.levelno == logging.INFO and msg.startswith(event + " "):
            out.append({k: v.strip('"') for k, v in LINE.findall(msg[len(event) :])})
    return out


def test_every_page_and_batch_is_logged_at_info_with_request_and_track_ids(env, caplog):
    caplog.set_level(logging.INFO)
    manifest = loaded()
    pages = [p for p in lines(caplog, "page") if p["object"] == "invoices"]
    invoices = env.emu.store.truth("invoices")
    assert len(pages) == -(-len(invoices) // 99), "one line per page of 99"
    assert sum(int(p["records"]) for p in pages) == len(invoices)
    assert [int(p["page"]) for p in pages] == list(range(1, len(pages) + 1))
    assert int(pages[-1]["total"]) == len(invoices)
    assert all(re.fullmatch(r"[0-9a-f-]{36}", p["request_id"]) for p in pages), "Zuora's request id of the page"
    tracks = [p["track_id"] for p in pages]
    assert len(set(tracks)) == len(tracks) and all(re.search(r"-\d+$", t) for t in tracks), "one track id per call"
    assert all(p["read"].startswith("window[") for p in pages)

    batches = [b for b in lines(caplog, "batch") if b["object"] == "invoices"]
    assert len(batches) == -(-len(invoices) // PART_ROWS)
    assert sum(int(b["loaded"]) + int(b["unchanged"]) for b in batches) == manifest["loaded"] + manifest["unchanged"]

    caplog.clear()
    result = mark(manifest)
    marks = lines(caplog, "mark batch")
    assert sum(int(m["flagged"]) for m in marks) == result["marked"] > 0
    assert len(marks) == -(-result["marked"] // 50), "action/update takes 50 a call"
    assert all(m["request_id"] and m["track_id"] for m in marks)
