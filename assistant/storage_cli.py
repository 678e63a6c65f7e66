"""``python main.py db ...``: create, migrate, seed and check the kiosk database."""

from __future__ import annotations

import argparse
import asyncio
import sys

from assistant.config import Config
from assistant.storage import SCHEMA_VERSION, Database, database_path


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``db`` sub-commands."""
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("migrate", help="create the database or bring it to the current schema")
    sub.add_parser("seed", help="load the demo customers, bills and staff (idempotent)")
    sub.add_parser("check", help="integrity check and schema version")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run one ``db`` action."""
    return asyncio.run(_run(args.action, config))


async def _run(action: str, config: Config) -> int:
    path = database_path(config)
    if action == "check" and not path.exists():
        print(f"{path}: no database here; create it with: python main.py db migrate", file=sys.stderr)
        return 1
    async with Database(path) as db:
        if action == "migrate":
            print(f"{path}: schema version {await db.version()} (current {SCHEMA_VERSION})")
        elif action == "check":
            row = await db.fetchone("PRAGMA integrity_check")
            print(f"{path}: integrity {row[0]}, schema version {await db.version()}")
            # Consent decisions written before every decision had to name its staff member.
            unnamed = await db.fetchall("SELECT id, user_id, granted, at FROM consent WHERE staff_id IS NULL ORDER BY id")
            for c in unnamed:
                what = "granted" if c["granted"] else "withdrawn"
                print(f"{path}: warning: consent record {c['id']} (customer {c['user_id']}, {what} {c['at']}) "
                      "names no staff member; have the hall confirm it with the customer", file=sys.stderr)
            return 0 if row[0] == "ok" else 1
        elif action == "seed":
            from assistant.seed import seed

            report = await seed(db, config.data_dir)
            print(
                f"{path}: {report.customers} demo customers, {report.bills} new bills, "
                f"{report.staff} new staff"
            )
            if report.face_photos:
                print(f"{len(report.face_photos)} demo face photo(s) to enrol: python main.py face enrol-demo")
    return 0
