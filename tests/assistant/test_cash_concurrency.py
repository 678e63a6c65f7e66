"""Two cash payments at the same moment both commit: no "database is locked", nothing mixed up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from assistant.messages import CashEventKind
from assistant.storage import Database
from tests.cashkit import Harness, make_sim, seed_account


async def pay(h: Harness, pid: str, account: str, notes: list[int]) -> object:
    await h.service.begin(pid, account, 12345, None)
    for n, value in enumerate(notes, start=1):
        await h.insert_note(value)
        await h.wait_event(CashEventKind.CREDITED, count=n)
    return await h.service.wait_finished(pid, 30)


async def test_two_kiosks_on_one_database_pay_at_once(tmp_path: Path) -> None:
    """Two kiosks (own units, own connection) write the same database at the same time."""
    path = tmp_path / "shared.db"
    async with Database(path) as db:
        await seed_account(db, "5000000001", {"2024-05": 12345})
        await seed_account(db, "5000000002", {"2024-05": 12345})
    sim_a, sim_b = make_sim(tmp_path / "a"), make_sim(tmp_path / "b")
    try:
        async with Database(path) as db_a, Database(path) as db_b:
            async with Harness(db_a, sim_a, kiosk_id="KA") as a, Harness(db_b, sim_b, kiosk_id="KB") as b:
                ra, rb = await asyncio.gather(
                    pay(a, "con-a", "5000000001", [10000, 5000]),
                    pay(b, "con-b", "5000000002", [10000, 10000]),
                )
            assert (ra.posted_fen, ra.change_paid_fen, ra.credited_fen) == (12345, 2650, 5)
            assert (rb.posted_fen, rb.change_paid_fen, rb.credited_fen) == (12345, 7650, 5)
            for account in ("5000000001", "5000000002"):
                info = await a.billing.account(account)
                assert (info.arrears_fen, info.prepaid_fen) == (0, 5)
            rows = await db_a.fetchall("SELECT kiosk_id, count(*) FROM billing_posting GROUP BY kiosk_id")
            assert dict((r[0], r[1]) for r in rows) == {"KA": 2, "KB": 2}
    finally:
        sim_a.stop()
        sim_b.stop()


async def test_two_services_sharing_one_connection(db: Database, tmp_path: Path) -> None:
    """Two kiosks in one process on one connection: transactions take turns instead of failing."""
    await seed_account(db, "5000000003", {"2024-05": 12345})
    await seed_account(db, "5000000004", {"2024-05": 12345})
    sim_a, sim_b = make_sim(tmp_path / "a"), make_sim(tmp_path / "b")
    try:
        async with Harness(db, sim_a, kiosk_id="KA") as a, Harness(db, sim_b, kiosk_id="KB") as b:
            ra, rb = await asyncio.gather(
                pay(a, "one-a", "5000000003", [10000, 10000]),
                pay(b, "one-b", "5000000004", [10000, 10000]),
            )
        assert ra.ok and rb.ok
        rows = await db.fetchall("SELECT count(*) FROM journal WHERE step = 'close'")
        assert rows[0][0] == 2
    finally:
        sim_a.stop()
        sim_b.stop()
