"""Sync runs converge while Zuora answers with 429s, 5xx bursts, dropped connections, slow
answers and expired tokens."""

from __future__ import annotations

import pytest

from tests.integration.test_sync_sqlite import check_sync

PROFILE = {
    "seed": 5,
    "rules": [
        {"kind": "429", "every": 9, "retry_after": 1, "max": 3},
        {"kind": "5xx", "every": 7, "burst": 2, "status": 503, "code": 50000061, "max": 6},
        {"kind": "5xx", "every": 5, "status": 500, "match": "/v1/action/update", "max": 2},
        {"kind": "drop", "every": 13, "max": 3},
        {"kind": "slow", "every": 17, "delay_ms": 200, "max": 3},
        {"kind": "token_expiry", "every": 11, "max": 3},
    ],
}


@pytest.mark.parametrize("family_name", ["crm_invoices", "erp_invoices", "erp_memos"])
def test_sync_converges_through_faults(env, family_name):
    env.emu.set_faults(PROFILE)
    check_sync(env, family_name)
    stats = env.emu.stats_view()
    injected = stats["faults_injected"]
    assert {"429", "5xx", "drop", "token_expiry"} <= set(injected), injected
    assert stats["untracked_requests"] == 0, "every API call carries a Zuora-Track-Id"
