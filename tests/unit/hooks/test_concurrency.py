"""The concurrency gate on real threads: its cap, Zuora's limit learnt from the headers, and the
pause before Zuora's limit runs out."""

from __future__ import annotations

import threading
import time

import pytest
from zuora_etl.hooks.concurrency import HOLD_BASE_S, ConcurrencyGate, gate_for


def headers(limit: int, remaining: int) -> dict[str, str]:
    return {"Concurrency-Limit-Limit": str(limit), "Concurrency-Limit-Remaining": str(remaining)}


def run_calls(gate: ConcurrencyGate, calls: int, seconds: float = 0.02) -> None:
    def call() -> None:
        with gate.slot():
            time.sleep(seconds)

    threads = [threading.Thread(target=call) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


def test_one_call_at_a_time_until_zuora_tells_its_limit():
    gate = ConcurrencyGate(8)
    run_calls(gate, 6)
    assert gate.cap == 1 and gate.max_in_flight == 1


@pytest.mark.parametrize(
    ("own", "zuora", "cap"),
    [(8, 80, 8), (8, 40, 8), (8, 6, 4), (8, 3, 1), (2, 80, 2)],  # Zuora's limit less max(2, 10 %)
)
def test_the_cap_is_the_gates_limit_within_zuoras_less_a_reserve(own, zuora, cap):
    gate = ConcurrencyGate(own)
    gate.observe(headers(zuora, zuora - 1))
    assert gate.cap == cap
    run_calls(gate, 3 * own)
    assert gate.max_in_flight == cap


def test_few_requests_left_pauses_new_calls_and_more_left_ends_the_pause():
    gate = ConcurrencyGate(8)
    gate.observe(headers(40, 30))
    assert gate.observe(headers(40, 4)) >= HOLD_BASE_S / 2  # 4 left of 40: the reserve
    started = time.monotonic()
    with gate.slot():
        pass
    assert time.monotonic() - started >= HOLD_BASE_S / 2 - 0.01
    gate.observe(headers(40, 4))
    gate.observe(headers(40, 20))  # room again: no wait
    started = time.monotonic()
    with gate.slot():
        pass
    assert time.monotonic() - started < 0.05
    assert gate.holds == 2


def test_pauses_grow_while_few_are_left_and_stay_bounded():
    gate = ConcurrencyGate(8)
    pauses = [gate.observe(headers(40, 0)) for _ in range(10)]
    assert pauses[3] > pauses[0] and max(pauses) <= 4.0


def test_answers_without_the_headers_change_nothing():
    gate = ConcurrencyGate(8)
    assert gate.observe({}) == 0.0 and gate.observe(headers(40, 1) | {"Concurrency-Limit-Limit": "?"}) == 0.0
    assert gate.zuora_limit is None


def test_hooks_of_a_process_share_one_gate_per_zuora():
    assert gate_for("http://a", 8) is gate_for("http://a", 8)
    assert gate_for("http://a", 8) is not gate_for("http://b", 8)
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyGate(0)
