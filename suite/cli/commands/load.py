"""`suite load` — steady prediction traffic against the release address (or any URL)."""

from __future__ import annotations

import argparse

from suite import load
from suite import settings as settings_mod


def cmd_load(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    url = args.url or f"{settings.url('haproxy')}/predict"
    print(f"sending {args.rate}/s to {url} for {args.duration}s ...", flush=True)
    report = load.run(url, args.rate, args.duration, concurrency=args.concurrency)
    print(report.summary())
    return 0 if report.failed <= args.max_failed else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("load", help="steady prediction traffic; reports failed requests")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second (20)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (30)")
    p.add_argument("--url", help="default: the release address /predict (HAProxy)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-failed", type=int, default=0,
                   help="exit 1 when more requests than this failed (0)")
    p.set_defaults(func=cmd_load)
