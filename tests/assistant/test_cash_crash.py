"""Never lose a fen: SIGKILL the kiosk at every step of cash payments, 200+ times, then reconcile.

The simulator runs as its own process (the hardware keeps its cash when the kiosk dies);
the kiosk's cash side runs in a child process (``tests.assistant.crash_kiosk``) with the real
pyserial driver, the real journal and the embedded billing ledger. This test plays the
customer through the simulator's control socket and kills the child with SIGKILL:

* at an exact durable step (the child freezes there: after a note is credited, between
  stacked and posted, mid-payout, after payout before posting, ... and during the recovery
  of a previous crash), and
* at random moments.

Every restart recovers. At the end: no payment is open; for every payment what was
inserted equals what was paid out plus posted plus credited; billing holds every posting;
the cash the simulator physically holds equals the kiosk's books and what the customers
put in minus what they got back; every receipt can be rebuilt (reprinted) and matches the
one stored at closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from assistant import cash_journal
from assistant.billing import LedgerBilling
from assistant.cash_reconcile import reconcile_cash
from assistant.receipts import ReceiptData, receipt_for
from assistant.storage import Database
from devices.cash_sim import SimControl
from tests.assistant import crash_kiosk
from tests.cashkit import books, seed_account, sim_inventory

pytestmark = pytest.mark.slow

KILLS_WANTED = 200
CHAINS = 2
"""Independent kiosks (own simulator process, own database) killed side by side; 2 cores."""
ACCOUNT = "3300112233"

# due (fen), then what the customer inserts in order
SCENARIOS: list[tuple[int, list[tuple[str, int]]]] = [
    (12345, [("note", 10000), ("note", 10000)]),  # 76.55 back from both units, 5 分 credited
    (12345, [("note", 10000), ("coin", 100), ("note", 5000)]),  # 27.55 back, 5 分 credited
    (370, [("coin", 100), ("coin", 100), ("coin", 100), ("coin", 100)]),  # 3 角 back
    (4560, [("note", 2000), ("note", 2000), ("coin", 50), ("note", 1000)]),  # 4.90 back
]
ONCE = ["opened", "accepting", "accept_off", "post_intent", "posted", "post_done", "credit_intent",
        "credited", "credit_done", "closed"]
"""Durable steps a payment passes once."""
TWICE = ["note_intent", "note_accept_sent", "note_stacked", "note_credited", "coin_credited",
         "payout_intent", "payout_tested", "payout_started", "payout_done"]
"""Durable steps a payment passes for each note, coin or unit paying out (killed at the 1st and 2nd)."""
PAY_STEPS = ONCE + TWICE
RECOVER_STEPS = ["post_intent", "posted", "post_done", "credit_intent", "credited", "credit_done", "closed"]
"""Steps of the recovery of an earlier crash (a crash while recovering from a crash)."""
CUSTOMER_CUES = {"accepting", "note_credited", "coin_credited"}

Target = tuple[str, str, int] | None
Cycle = tuple[int, Target]  # (scenario index, where to kill; None = at a random moment)


def schedule(rng: random.Random) -> list[Cycle]:
    """Kill points covering every step, each with a payment that reaches it, plus random kills."""
    block: list[Cycle] = []
    for i, step in enumerate(ONCE):
        sc = i % 2 if step.startswith("credit") else i % 4
        block.append((sc, ("pay", step, 1)))
    for i, step in enumerate(TWICE):
        for n in (1, 2):
            sc = 2 if step == "coin_credited" else (0, 1, 3)[(i + n) % 3] if step.startswith("note") else n - 1
            block.append((sc, ("pay", step, n)))
    for i, step in enumerate(RECOVER_STEPS):
        # stop the payment before any change is paid: its recovery then posts and credits
        block.append((0, ("pay", "accept_off", 1)))
        block.append((i % 2, ("recover", step, 1)))
    block += [(i % 4, None) for i in range(10)]
    plan: list[Cycle] = []
    while len(plan) < KILLS_WANTED * 2:
        plan += rng.sample(block, len(block)) if plan else block
    return plan


class Customer:
    """Puts notes and coins in through the simulator, one after another, as the kiosk takes them."""

    def __init__(self, ctl: SimControl, items: list[tuple[str, int]]) -> None:
        self.ctl = ctl
        self.items = list(items)

    def next(self) -> None:
        if not self.items:
            return
        kind, value = self.items.pop(0)
        for _ in range(40):  # a refused piece is taken back and tried again
            ok = self.ctl.insert_note(value) if kind == "note" else self.ctl.insert_coin(value)
            if ok:
                return
            time.sleep(0.05)
        raise AssertionError(f"the kiosk kept refusing a {kind} of {value} fen")


def start_sim_process(root: Path, *args: str) -> subprocess.Popen[str]:
    """The simulator as its own process (the hardware outlives the kiosk); waits until it is ready."""
    sim = subprocess.Popen([sys.executable, "-m", "devices.cash_sim", *args], cwd=root,
                           stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None and sim.stdout.readline().startswith("READY")
    return sim


def fork_server() -> Any:
    """A fork server with the kiosk's modules imported, so each kiosk process starts at once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.assistant.crash_kiosk"])
    return ctx


async def reap(proc: Any, timeout: float) -> None:
    """Wait for a child on the event loop's own thread.

    A forkserver child's exit code is read once from its sentinel; every ``Process.start``
    polls all live children, so a ``join`` in a worker thread races a start in this thread
    and one of them reads nothing (reported as exit code 255).
    """
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    loop.add_reader(proc.sentinel, ended.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), timeout)
    finally:
        loop.remove_reader(proc.sentinel)
    proc.join(0)


async def run_child(ctx: Any, db: Path, link: Path, ctl: SimControl, pid: str | None,
                    scenario: tuple[int, list[tuple[str, int]]] | None,
                    target: tuple[str, str, int] | None, kill_after: float | None) -> bool:
    """One kiosk process; returns True if it was SIGKILLed."""
    argv = ["--db", str(db), "--link", str(link)]
    if pid and scenario:
        argv += ["--pay", pid, ACCOUNT, str(scenario[0])]
    if target:
        argv += ["--stop-at", ":".join(map(str, target))]
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=crash_kiosk.child_main, args=(argv, send), daemon=True)
    proc.start()
    send.close()
    customer = Customer(ctl, scenario[1] if scenario else [])
    started = time.monotonic()
    limit = started + 60
    killed = False
    phase = ""
    log: list[str] = []
    try:
        while True:
            if kill_after is not None and time.monotonic() >= started + kill_after:
                proc.kill()  # SIGKILL at a random moment
                killed = proc.exitcode is None or proc.exitcode == -signal.SIGKILL
                break
            wait = limit - time.monotonic()
            if kill_after is not None:
                wait = min(wait, started + kill_after - time.monotonic())
            if not await asyncio.to_thread(recv.poll, max(wait, 0.0)):
                if kill_after is not None:
                    continue
                raise AssertionError(f"kiosk process stuck ({argv}): {log}")
            try:
                message = recv.recv()
            except EOFError:
                break
            log.append(message)
            parts = message.split()
            if parts[0] == "PHASE":
                phase = parts[1]
            elif parts[0] == "STEP" and phase == "pay" and parts[2] in CUSTOMER_CUES:
                await asyncio.to_thread(customer.next)
            elif parts[0] == "STOPPED":
                proc.kill()  # SIGKILL exactly here
                killed = True
                break
    finally:
        await reap(proc, 200)
        recv.close()
    if killed:
        assert proc.exitcode == -signal.SIGKILL
    else:
        assert proc.exitcode == 0, f"kiosk process failed with {proc.exitcode} ({argv}): {log}"
    return killed


@dataclass
class ChainResult:
    """What one kiosk went through."""

    kills: int = 0
    payments: int = 0
    steps_hit: set[tuple[str, str]] = field(default_factory=set)
    recovered: int = 0


async def chain(ctx: Any, root: Path, tmp: Path, seed: int, kills_wanted: int) -> ChainResult:
    """Kill one kiosk again and again at the scheduled points, then check every fen."""
    link, sock, state, dbpath = (tmp / n for n in ("ssp.tty", "sim.sock", "sim.json", "kiosk.db"))
    sim = start_sim_process(root, "--link", str(link), "--control", str(sock), "--state", str(state),
                            "--notes", "10000=50,5000=300,2000=300,1000=300,500=300,100=300",
                            "--coins", "100=500,50=500,10=500", "--speed", "40")
    out = ChainResult()
    try:
        ctl = SimControl(sock)
        start_snapshot = ctl.snapshot()
        async with Database(dbpath) as db:
            await seed_account(db, ACCOUNT, {f"2024-{m:02d}": 10**7 for m in range(1, 13)})
        rng = random.Random(seed)
        for i, (sc, target) in enumerate(schedule(rng)):
            if out.kills >= kills_wanted:
                break
            kill_after = rng.uniform(0.05, 0.6) if target is None else None
            out.payments += 1
            if await run_child(ctx, dbpath, link, ctl, f"crash-{seed}-{i:04d}", SCENARIOS[sc], target, kill_after):
                out.kills += 1
                if target is not None:
                    out.steps_hit.add(target[:2])
        # a last clean start recovers whatever the last kill left open
        assert not await run_child(ctx, dbpath, link, ctl, None, None, None, None)
        end = ctl.snapshot()
        ctl.close()
        async with Database(dbpath) as db:
            out.recovered = await check_every_fen(db, start_snapshot, end, out.payments)
    finally:
        sim.terminate()
        sim.wait(5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
    return out


async def check_every_fen(db: Database, start: dict, end: dict, payments: int) -> int:
    """Reconcile the journal, billing, the books and the physical cash; returns how many were recovered."""
    billing = LedgerBilling(db)
    assert await cash_journal.open_payment_ids(db) == []
    rec = await reconcile_cash(db, billing)
    assert rec.discrepancies == ()
    assert 0 < len(rec.lines) <= payments  # a kill before the payment row leaves nothing to account for
    # every fen the customers left in the kiosk is in the journal, and the units hold it
    tallies = {k: {int(v): n for v, n in book.items()} for k, book in end["tallies"].items()}
    put_in = sum(v * n for v, n in tallies["in"].items())
    handed_back = sum(v * n for v, n in tallies["back"].items())
    paid_out = sum(v * n for v, n in tallies["paid"].items())
    assert rec.total("inserted_fen") == put_in - handed_back
    assert rec.total("paid_out_fen") == paid_out
    assert end["in_transit"] == 0

    def value(inv: dict) -> int:
        return sum(v * n for unit in inv.values() for v, n in unit.items())

    assert value(sim_inventory(end)) - value(sim_inventory(start)) == put_in - handed_back - paid_out
    assert await books(db) == sim_inventory(end)
    # billing got exactly what the journal says, nothing posted twice
    rows = await db.fetchall(
        "SELECT kind, sum(amount_fen), count(*), count(DISTINCT reference) FROM billing_posting GROUP BY kind")
    by_kind = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert by_kind["payment"][0] == rec.total("posted_fen")
    assert by_kind.get("prepayment", (0, 0, 0))[0] == rec.total("credited_fen")
    assert all(n == distinct for _, n, distinct in by_kind.values())
    # every receipt can be reprinted from the journal and matches the one stored at closing
    recovered = 0
    for line in rec.lines:
        stored = await db.fetchone("SELECT body FROM receipt WHERE payment_id = ?", (line.payment_id,))
        again = await receipt_for(db, line.payment_id)
        assert ReceiptData.from_json(stored[0]) == again
        assert again.inserted_fen == (again.posted_fen + again.change_paid_fen + again.refunded_fen
                                      + again.credited_fen)
        recovered += again.recovered
    return recovered


async def test_sigkill_at_every_step_loses_no_fen(tmp_path: Path, root: Path) -> None:
    ctx = fork_server()
    began = time.monotonic()
    results = await asyncio.gather(*(
        chain(ctx, root, tmp_path / f"kiosk{k}", 20240601 + k, KILLS_WANTED // CHAINS) for k in range(CHAINS)
    ))
    elapsed = time.monotonic() - began
    kills = sum(r.kills for r in results)
    assert kills >= KILLS_WANTED
    for r in results:
        assert {s for p, s in r.steps_hit if p == "pay"} == set(PAY_STEPS)
        assert {s for p, s in r.steps_hit if p == "recover"} == set(RECOVER_STEPS)
        assert r.recovered >= r.kills * 0.5
    print(f"\n{kills} SIGKILLs over {sum(r.payments for r in results)} payments in {elapsed:.0f} s "
          f"({CHAINS} kiosks); {sum(r.recovered for r in results)} payments finished by recovery; "
          f"every fen accounted for and every receipt reprinted")
