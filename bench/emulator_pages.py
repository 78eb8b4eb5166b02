"""How fast the emulator serves Object Query pages (pageSize=99 invoices, all fields).

The emulator runs in its own process, as in the demo; clients page through every invoice with
sort[]=updatedDate.ASC, split into time slices per client thread. Prints a table and writes
bench/results/emulator_pages.json.

    python bench/emulator_pages.py [--scale medium] [--clients 1 4 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def page_all(base: str, token: str, lo: str, hi: str, out: list[int]) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    params = [
        ("pageSize", "99"),
        ("sort[]", "updatedDate.ASC"),
        ("filter[]", f"updatedDate.GE:{lo}"),
        ("filter[]", f"updatedDate.LT:{hi}"),
    ]
    cursor, pages, records = None, 0, 0
    while True:
        r = session.get(
            f"{base}/object-query/invoices",
            params=params + ([("cursor", cursor)] if cursor else []),
            headers=headers,
            timeout=60,
        )
        r.raise_for_status()
        body = r.json()
        pages += 1
        records += len(body["data"])
        cursor = body.get("nextPage")
        if not cursor:
            break
    out.append((pages, records))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from include.zuora_emulator.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "include.zuora_emulator",
            "serve",
            "--port",
            str(port),
            "--scale",
            args.scale,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        print(proc.stdout.readline().strip())
        base = f"http://127.0.0.1:{port}"
        token = requests.post(
            f"{base}/oauth/token",
            data={
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "grant_type": "client_credentials",
            },
        ).json()["access_token"]
        start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime.now(UTC)
        rows = []
        for n in args.clients:
            step = (end - start) / n
            out: list = []
            threads = []
            for i in range(n):
                lo = (start + step * i).isoformat(timespec="seconds")
                hi = (
                    (start + step * (i + 1)).isoformat(timespec="seconds") if i < n - 1 else "2100-01-01T00:00:00+00:00"
                )
                threads.append(threading.Thread(target=page_all, args=(base, token, lo, hi, out)))
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            secs = time.perf_counter() - t0
            pages, records = sum(p for p, _ in out), sum(r for _, r in out)
            rows.append(
                {
                    "clients": n,
                    "pages": pages,
                    "records": records,
                    "seconds": round(secs, 2),
                    "pages_per_s": round(pages / secs, 1),
                    "records_per_s": round(records / secs),
                }
            )
        print(f"{'clients':>7} {'pages':>7} {'records':>9} {'seconds':>8} {'pages/s':>8} {'records/s':>10}")
        for r in rows:
            print(
                f"{r['clients']:>7} {r['pages']:>7} {r['records']:>9} {r['seconds']:>8} {r['pages_per_s']:>8} "
                f"{r['records_per_s']:>10}"
            )
        result = {
            "benchmark": "emulator_pages",
            "scale": args.scale,
            "when": datetime.now(UTC).isoformat(),
            "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}",
            "python": platform.python_version(),
            "rows": rows,
        }
        out_path = ROOT / "bench" / "results" / "emulator_pages.json"
        out_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out_path.relative_to(ROOT)}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
