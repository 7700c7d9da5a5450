"""`suite load` — steady traffic to a service on the release address (or any URL): predictions
for the model server, GETs for any other service (its Host header picks it)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from suite import load
from suite import settings as settings_mod


def cmd_load(args: argparse.Namespace) -> int:
    from models.data import default_rows

    settings = settings_mod.load()
    predictions = args.service == "model-server"
    url = args.url or f"{settings.url('haproxy')}{'/predict' if predictions else args.path}"
    host = "" if args.url else f"{args.service}.localhost"
    if not args.url:
        from suite.services.registry import Registry

        host = Registry(settings).get(args.service).host
    print(f"sending {args.rate}/s to {url} (Host: {host or 'as in the URL'}) for "
          f"{args.duration}s ...", file=sys.stderr if args.json else sys.stdout, flush=True)
    report = load.run(url, args.rate, args.duration, default_rows() if predictions else None,
                      concurrency=args.concurrency, host=host)
    print(json.dumps({**asdict(report), "achieved_rate": report.achieved_rate}) if args.json
          else report.summary())
    return 0 if report.failed <= args.max_failed else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("load", help="steady prediction traffic; reports failed requests")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second (20)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (30)")
    p.add_argument("--service", default="model-server",
                   help="registered service whose Host header is sent (model-server: predictions)")
    p.add_argument("--path", default="/", help="path for GETs to a service other than the model "
                   "server (/)")
    p.add_argument("--url", help="any URL instead of a service on the release address")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-failed", type=int, default=0,
                   help="exit 1 when more requests than this failed (0)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_load)
