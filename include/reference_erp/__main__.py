"""`python -m include.reference_erp serve --port 8790 --db erp.sqlite3 --password-env ERP_PASSWORD`"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .server import ReferenceErp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.reference_erp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the reference ERP REST API")
    serve.add_argument("--port", type=int, default=8790)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--db", type=Path, help="SQLite file kept across restarts (default: a temporary one)")
    serve.add_argument("--username", default="erp", help="HTTP Basic user")
    serve.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding the HTTP Basic password (default: the password erp-secret)",
    )
    serve.add_argument("--faults", type=Path, help="JSON fault profile (see faults.py)")
    args = parser.parse_args(argv)

    password = "erp-secret"
    if args.password_env:
        password = os.environ.get(args.password_env, "")
        if not password:
            parser.error(f"--password-env: the environment variable {args.password_env} is not set or empty")
    try:
        faults = json.loads(args.faults.read_text()) if args.faults else None
        erp = ReferenceErp(
            db_path=args.db,
            username=args.username,
            password=password,
            faults=faults,
            host=args.host,
            port=args.port,
        )
    except (OSError, ValueError) as exc:
        parser.error(f"--faults: {exc}")
    erp.start()
    where = f"db {args.db}" if args.db else "temporary db"
    print(f"Reference ERP serving at {erp.url} (user {args.username}, {where})", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    erp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
