"""`python -m include.zuora_emulator serve --port 8780 --scale small --seed 42` (or `--accounts 4545`)"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from .generator import SCALES, sized_scale
from .server import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.zuora_emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve an emulated tenant on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8780)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--scale", choices=list(SCALES), default="small")
    serve.add_argument(
        "--accounts",
        type=int,
        metavar="N",
        help="size the tenant by account count instead of --scale (about 22 invoice items per account)",
    )
    serve.add_argument("--seed", type=int, default=42)
    serve.add_argument(
        "--tz",
        default="America/Los_Angeles",
        help="tenant zone: -08:00 or an IANA name",
    )
    serve.add_argument("--faults", type=Path, help="JSON fault profile (see faults.py)")
    serve.add_argument("--latency-ms", type=int, default=0, help="added to every API answer")
    serve.add_argument("--client-id", default="demo-client")
    serve.add_argument("--client-secret", default="demo-secret")
    serve.add_argument("--token-ttl", type=int, default=3599, help="token lifetime in seconds")
    serve.add_argument("--rate-limit", type=int, default=50_000, help="calls per minute")
    serve.add_argument("--concurrency", type=int, default=80, help="Object Query requests in flight")
    serve.add_argument(
        "--disabled-objects",
        default="",
        metavar="ENDPOINTS",
        help="comma-separated endpoints the tenant has not enabled, e.g. orders,order-actions,order-line-items",
    )
    serve.add_argument(
        "--no-custom-fields",
        dest="custom_fields",
        action="store_false",
        help="the tenant defines no custom fields (crmAccountId__c... are unknown fields)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    # `--tz -08:00` is the documented form; argparse would read -08:00 as an option.
    for i, arg in enumerate(argv[:-1]):
        if arg == "--tz":
            argv[i : i + 2] = [f"--tz={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)

    faults = json.loads(args.faults.read_text()) if args.faults else None
    if args.accounts is not None and args.accounts < 1:
        parser.error("--accounts must be at least 1")
    scale = sized_scale(args.accounts) if args.accounts is not None else args.scale
    try:
        emulator = Emulator(
            scale=scale,
            seed=args.seed,
            tz=args.tz,
            faults=faults,
            latency_ms=args.latency_ms,
            client_id=args.client_id,
            client_secret=args.client_secret,
            token_ttl=args.token_ttl,
            rate_limit_per_minute=args.rate_limit,
            concurrency_limit=args.concurrency,
            disabled_objects=[o.strip() for o in args.disabled_objects.split(",") if o.strip()],
            custom_fields=args.custom_fields,
            host=args.host,
            port=args.port,
        )
    except ValueError as exc:
        parser.error(str(exc))
    emulator.start()
    counts = emulator.store.counts()
    print(
        f"Zuora emulator serving {scale} tenant (seed {args.seed}) at {emulator.base_url}",
        flush=True,
    )
    print(
        f"  {counts['accounts']} accounts, {counts['invoices']} invoices, {counts['invoice-items']} invoice items",
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
