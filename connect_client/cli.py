"""`kntc-connect`: token, submit, read and follow the feed from the command line.

Settings come from the environment so that no secret sits in a shell history:
KNTC_URL (https://host:8443), KNTC_CLIENT_ID, KNTC_CERT, KNTC_KEY, KNTC_CA (the server's CA bundle).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from connect_client.client import Connection, ExchangeError


def _connection(scopes: str = "") -> Connection:
    missing = [v for v in ("KNTC_URL", "KNTC_CLIENT_ID", "KNTC_CERT", "KNTC_KEY") if not os.environ.get(v)]
    if missing:
        sys.exit(f"kntc-connect: set {', '.join(missing)}")
    return Connection(
        os.environ["KNTC_URL"],
        os.environ["KNTC_CLIENT_ID"],
        os.environ["KNTC_CERT"],
        os.environ["KNTC_KEY"],
        ca=os.environ.get("KNTC_CA") or True,
        scopes=scopes,
    )


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="kntc-connect", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("token", help="get an access token (prints its scope and lifetime, not the token)")
    t.add_argument("--scope", default="")
    s = sub.add_parser("submit", help="submit a JSON file: one item, or a list (sent in batches of 100)")
    s.add_argument("file")
    s.add_argument(
        "--key", help="Idempotency-Key (default: a new UUID per request; give one to retry safely from another run)"
    )
    g = sub.add_parser("get", help="fetch one case")
    g.add_argument("code")
    g.add_argument("--purpose", required=True)
    f = sub.add_parser("follow", help="follow the change feed, one JSON line per event on stdout")
    f.add_argument("--purpose", required=True)
    f.add_argument("--cursor-file", required=True, help="where the cursor is saved after each event")
    f.add_argument("--once", action="store_true", help="stop when the feed has nothing more")
    args = p.parse_args(argv)
    try:
        with _connection(getattr(args, "scope", "")) as conn:
            if args.command == "token":
                conn.token()
                _print({"client_id": conn.client_id, "token": "obtained", "renews_in_s": int(conn._token_until)})
            elif args.command == "submit":
                with open(args.file, encoding="utf-8") as fh:
                    data = json.load(fh)
                if isinstance(data, list):
                    for i in range(0, len(data), 100):
                        key = f"{args.key}-{i // 100}" if args.key else None
                        _print(conn.submit_batch(data[i : i + 100], key))
                else:
                    _print(conn.submit(data, args.key))
            elif args.command == "get":
                _print(conn.get_case(args.code, args.purpose))
            elif args.command == "follow":

                def show(item: dict[str, Any]) -> None:
                    print(json.dumps(item, ensure_ascii=False, default=str), flush=True)

                for _ in conn.follow(args.purpose, args.cursor_file, show, once=args.once):
                    pass
    except ExchangeError as exc:
        print(json.dumps({"status": exc.status, "body": exc.body}, ensure_ascii=False), file=sys.stderr)
        sys.exit(1)
