from __future__ import annotations

import threading

import pytest

ASC = [
    ("sort[]", "updatedDate.ASC"),
    ("pageSize", "99"),
    ("fields[]", "id,updatedDate,status"),
]


@pytest.mark.parametrize("size", ["1", "7", "99"])
def test_paging_returns_every_record_once(api, size):
    params = [("sort[]", "updatedDate.ASC"), ("pageSize", size), ("fields[]", "id")]
    obj = "payments" if size != "1" else "credit-memos"
    got = [r["id"] for r in api.all(obj, params)]
    assert len(got) == len(set(got)) == len(api.truth(obj))


def test_last_page_has_no_next_page_and_empty_result_is_bare(api):
    pages = api.pages("credit-memos", [("pageSize", "99")])
    assert len(pages) == 1
    r = api.get("/object-query/invoices", [("filter[]", "updatedDate.GE:2099-01-01T00:00:00Z")])
    assert r.json() == {"data": []}


def test_cursor_is_bound_to_its_query(api):
    first = api.get("/object-query/invoices", ASC).json()
    other = [
        ("sort[]", "updatedDate.DESC"),
        ("pageSize", "99"),
        ("cursor", first["nextPage"]),
    ]
    assert api.get("/object-query/invoices", other).status_code == 400
    assert api.get("/object-query/invoices", [*ASC, ("cursor", "garbage!")]).status_code == 400


def test_paging_stays_complete_when_records_change_between_pages(fresh_api):
    """Records that change mid-paging move to the end (sort ASC) and are still seen; none is lost."""
    api = fresh_api
    before = {r["id"] for r in api.truth("invoices")}
    seen: list[str] = []
    cursor, page_no, mutated = None, 0, []
    while True:
        r = api.get("/object-query/invoices", ASC + ([("cursor", cursor)] if cursor else []))
        body = r.json()
        seen.extend(rec["id"] for rec in body["data"])
        page_no += 1
        if page_no == 2:
            # Update records not yet seen and records already seen, create and delete some: all in one second.
            unseen = sorted(before - set(seen))[:50]
            already = seen[:20]
            deleted = sorted(before - set(seen) - set(unseen))[:5]
            res = api.mutate(
                [
                    {
                        "op": "update",
                        "object": "invoices",
                        "ids": unseen + already,
                        "set": {"status": "Posted"},
                    },
                    {
                        "op": "create",
                        "object": "invoices",
                        "records": [{"status": "Draft", "amount": 1.0}] * 3,
                    },
                    {"op": "delete", "object": "invoices", "ids": deleted},
                ]
            )
            mutated = res
        cursor = body.get("nextPage")
        if not cursor:
            break
    created = set(mutated[1]["ids"])
    deleted = set(mutated[2]["ids"])
    # Everything that existed throughout and every new record is seen.
    assert (before - deleted) | created <= set(seen)
    # Only records updated after being seen appear twice.
    dupes = {i for i in seen if seen.count(i) > 1}
    assert dupes == set(mutated[0]["ids"]) & set(seen[: 2 * 99])


def test_many_records_in_one_second_across_a_page_boundary(fresh_api):
    api = fresh_api
    res = api.mutate(
        [{"op": "update", "object": "invoices", "count": 250, "set": {}}],
        at="2030-01-01T00:00:00Z",
    )
    ids = set(res[0]["ids"])
    got = api.all("invoices", [*ASC, ("filter[]", "updatedDate.GE:2030-01-01T00:00:00Z")])
    assert [r["updatedDate"] for r in got] == ["2029-12-31T16:00:00-08:00"] * 250
    assert {r["id"] for r in got} == ids and len(got) == 250


def test_concurrent_clients_page_independently(shared_emulator, api):
    from tests.emulator.conftest import Api

    results: dict[int, int] = {}

    def run(n: int) -> None:
        results[n] = len(Api(shared_emulator).all("invoices", ASC))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results.values()) == {len(api.truth("invoices"))}
