"""The kiosk's cash side as a process the crash test can kill: start, recover, take one payment.

Run as ``python -m tests.assistant.crash_kiosk --db D --link L [--pay ID ACCOUNT DUE]
[--stop-at PHASE:STEP:N]`` (messages on stdout), or through :func:`child_main` in a process
forked from a pre-loaded fork server (messages on a pipe; starts in milliseconds, which
is what lets the crash test kill 200+ kiosks in reasonable time). It reports one message
per durable step (``STEP <phase> <name>``) so the test, playing the customer, knows when
to insert the next note; at the chosen step it reports ``STOPPED`` and freezes so the test
can SIGKILL it at exactly that point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.billing import LedgerBilling
from assistant.cash_payment import CashPaymentService
from assistant.storage import Database
from devices.cash import CashConfig
from devices.ssp_serial import SerialPort, SspCoinHopper, SspNoteRecycler

FAST = CashConfig(
    reply_timeout_s=0.3, retries=3, poll_interval_s=0.02, hold_interval_s=0.3, max_hold_s=5.0,
    finish_timeout_s=10.0, reconnect_interval_s=0.1,
)


def _print(*parts: object) -> None:
    print(*parts, flush=True)


say: Callable[..., None] = _print


async def run(args: argparse.Namespace) -> int:
    phase = "start"
    seen: dict[tuple[str, str], int] = {}
    stop = None
    if args.stop_at:
        p, s, n = args.stop_at.split(":")
        stop = (p, s, int(n))

    def checkpoint(step: str) -> None:
        key = (phase, step)
        seen[key] = seen.get(key, 0) + 1
        say("STEP", phase, step)
        if stop is not None and (phase, step, seen[key]) == stop:
            say("STOPPED", phase, step)
            time.sleep(3600)  # freeze everything (event loop included) until the test kills us

    cfg = FAST
    db = await Database(args.db).open()
    port = SerialPort(args.link)
    kw = dict(reply_timeout=cfg.reply_timeout_s, retries=cfg.retries,
              hold_interval=cfg.hold_interval_s, max_hold=cfg.max_hold_s)
    notes = SspNoteRecycler(port, 0, owns_port=False, **kw)
    coins = SspCoinHopper(port, 0x10, **kw)
    service = CashPaymentService(db, LedgerBilling(db), notes, coins, "K-CRASH", lambda e: None,
                                 config=cfg, checkpoint=checkpoint)
    await service.start()
    phase = "recover"
    say("PHASE recover")
    results = await service.recover()
    say("RECOVERED", json.dumps([r.payment_id for r in results]))
    if args.pay:
        pid, account, due = args.pay
        phase = "pay"
        say("PHASE pay")
        await service.begin(pid, account, int(due), None)
        result = await service.wait_finished(pid, 180)  # generous: a loaded CI machine is slow, not wrong
        say("FINISHED", pid, result.inserted_fen, result.posted_fen, result.change_paid_fen,
            result.credited_fen)
    await service.stop()
    await db.close()
    say("EXIT")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--link", type=Path, required=True)
    p.add_argument("--pay", nargs=3, metavar=("ID", "ACCOUNT", "DUE"))
    p.add_argument("--stop-at", help="phase:step:occurrence")
    return p


def child_main(argv: list[str], conn: Any) -> None:
    """Entry point in a forked child: messages go to ``conn`` as strings."""
    global say

    def send(*parts: object) -> None:
        conn.send(" ".join(str(x) for x in parts))

    say = send
    code = asyncio.run(run(parser().parse_args(argv)))
    conn.close()
    sys.exit(code)


def main() -> int:
    return asyncio.run(run(parser().parse_args()))


if __name__ == "__main__":
    sys.exit(main())
