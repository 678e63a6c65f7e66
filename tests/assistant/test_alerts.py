"""Alerts: the rules on a kiosk's books, the three notifier channels for real, the staff and customer side."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant.alerts import (
    AlertKind,
    AlertService,
    CommandNotifier,
    FileDropNotifier,
    NotifyError,
    WebhookNotifier,
    make_notifier,
    open_alerts,
)
from assistant.backoffice import utc_stamp
from assistant.config import Config
from assistant.kiosk import LogNotifier
from assistant.messages import CashEvent, CashEventKind
from assistant.prompts import Prompt
from assistant.seed import hash_pin
from assistant.storage import Database

# a Wednesday, 10:00 in Beijing: staff on duty
T0 = datetime(2025, 3, 5, 2, 0, tzinfo=UTC)


def _config(tmp_path: Path, **alerts) -> Config:
    cfg = Config.default(alerts={"notifier": "file", "drop_dir": str(tmp_path / "drop"), "cycle_days": 2, **alerts},
                         kiosk={"hall_phone": "95598"})
    return cfg


async def _kiosk_state(db: Database) -> None:
    """Books and a day of movements: 10 元 notes running out, cashbox and hopper nearly full."""
    async with db.transaction() as tx:
        for no, role in (("B01", "bank"), ("H01", "hall")):
            await tx.execute("INSERT INTO staff(staff_no, name, role, pin_hash) VALUES (?, ?, ?, ?)",
                             (no, no, role, hash_pin("1234")))
        await tx.execute("INSERT INTO cash_exchange(unit, state, bank_staff_id, hall_staff_id, expected_out, "
                         "counted_out, started_at, ended_at) VALUES ('notes', 'closed', 1, 2, '{}', '{}', ?, ?)",
                         (utc_stamp(T0 - timedelta(days=1)), utc_stamp(T0 - timedelta(days=1))))
        books = {("notes", 1000): 5, ("notes", 2000): 60, ("coins", 10): 950, ("cashbox", 10000): 920}
        for (unit, value), n in books.items():
            await tx.execute("INSERT INTO cash_unit(unit, denomination_fen, count) VALUES (?, ?, ?)", (unit, value, n))
        # in the last 12 hours 40 x 10 元 went out as change and 10 came in: 60 a day net
        for delta, reason in ((-40, "dispensed"), (10, "stacked")):
            await tx.execute("INSERT INTO cash_movement(unit, denomination_fen, delta, reason, at) "
                             "VALUES ('notes', 1000, ?, ?, ?)", (delta, reason, utc_stamp(T0 - timedelta(hours=12))))


async def test_rules_raise_send_repeat_and_clear(db: Database, tmp_path: Path) -> None:
    await _kiosk_state(db)
    svc = AlertService(db, _config(tmp_path))
    new = await svc.check(T0)
    by_kind = {a.kind: a for a in new}
    assert set(by_kind) == {AlertKind.CHANGE_LOW, AlertKind.CASHBOX_FULL, AlertKind.HOPPER_FULL,
                            AlertKind.INSURED_LIMIT}
    low = by_kind[AlertKind.CHANGE_LOW]
    assert low.subject == "notes:1000"
    # 5 notes at 60 a day last 2 hours; the next collection is 24 hours away
    assert low.facts["hours_to_empty"] == 2.0 and low.facts["hours_to_collection"] == 24.0
    assert low.slots["refill"].value == 60 - 5  # a day's net use, less what is there
    assert by_kind[AlertKind.HOPPER_FULL].subject == "coins:10"
    assert by_kind[AlertKind.INSURED_LIMIT].facts["held_fen"] == 5 * 1000 + 60 * 2000 + 950 * 10 + 920 * 10000
    drops = sorted((tmp_path / "drop").glob("*.json"))
    assert len(drops) == 4
    sent = [json.loads(p.read_text()) for p in drops]
    assert {s["alert"] for s in sent} == {"change_low", "cashbox_full", "hopper_full", "insured_limit"}
    assert all(s["kiosk_id"] == "K001" and s["hall_phone"] == "95598" for s in sent)
    rows = await db.fetchall("SELECT kind, notified_at, cleared_at FROM alert ORDER BY id")
    assert len(rows) == 4 and all(r["notified_at"] and r["cleared_at"] is None for r in rows)

    # nothing new, nothing sent again within repeat_minutes
    assert await svc.check(T0 + timedelta(minutes=10)) == []
    assert len(list((tmp_path / "drop").glob("*.json"))) == 4
    # staff acknowledge the cashbox; the others are sent again after two hours
    await svc.acknowledge(by_kind[AlertKind.CASHBOX_FULL].id, staff_id=2)
    await svc.check(T0 + timedelta(minutes=121))
    assert len(list((tmp_path / "drop").glob("*.json"))) == 4 + 3

    # the bank refills the 10 元 notes: that alert clears, the rest stay
    async with db.transaction() as tx:
        await tx.execute("UPDATE cash_unit SET count = 100 WHERE unit = 'notes' AND denomination_fen = 1000")
    await svc.check(T0 + timedelta(minutes=130))
    assert {a.kind for a in svc.pending()} == {AlertKind.CASHBOX_FULL, AlertKind.HOPPER_FULL,
                                               AlertKind.INSURED_LIMIT}
    cleared = await db.fetchone("SELECT cleared_at FROM alert WHERE kind = 'change_low'")
    assert cleared[0] == utc_stamp(T0 + timedelta(minutes=130))


async def test_a_fault_alerts_only_when_it_lasts(db: Database, tmp_path: Path) -> None:
    svc = AlertService(db, _config(tmp_path, fault_minutes=15.0))
    svc.fault("notes:note_jam", True, at=T0)
    svc.observe(CashEvent(event=CashEventKind.FAULT, detail="coins:coin_without_payment"))  # over at once
    assert await svc.check(T0 + timedelta(minutes=10)) == []
    (alert,) = await svc.check(T0 + timedelta(minutes=16))
    assert (alert.kind, alert.subject, alert.slots["minutes"].value) == (AlertKind.FAULT, "notes:note_jam", 16)
    svc.observe(CashEvent(event=CashEventKind.FAULT_CLEARED, detail="notes:note_jam"))
    await svc.check(T0 + timedelta(minutes=17))
    assert svc.pending() == []


async def test_after_a_restart_open_alerts_are_not_sent_twice(db: Database, tmp_path: Path) -> None:
    await _kiosk_state(db)
    await AlertService(db, _config(tmp_path)).check(T0)
    again = AlertService(db, _config(tmp_path))
    assert await again.check(T0 + timedelta(minutes=5)) == []
    assert len(list((tmp_path / "drop").glob("*.json"))) == 4
    assert len(again.pending()) == 4


async def test_alert_texts_render_in_every_pack(db: Database, tmp_path: Path, packs) -> None:
    await _kiosk_state(db)
    svc = AlertService(db, _config(tmp_path))
    svc.fault("notes:note_jam", True, at=T0 - timedelta(minutes=30))
    await svc.check(T0)
    for pack_id in ("zh-CN", "yue", "zh-CN-sichuan"):
        pack = packs.get(pack_id)
        for a in svc.pending():
            shown = pack.render(a.prompt_id, a.slots)
            assert shown.display and not any(c.isascii() and c.isdigit() for c in shown.speech)
    zh = packs.get("zh-CN")
    low = next(a for a in svc.pending() if a.kind == AlertKind.CHANGE_LOW)
    assert "¥10.00" in zh.render(low.prompt_id, low.slots).display
    fault = next(a for a in svc.pending() if a.kind == AlertKind.FAULT)
    assert zh.render(fault.prompt_id, fault.slots).display.startswith(zh.label("device_notes"))


async def test_notifications_carry_the_default_pack_text(db: Database, tmp_path: Path, packs) -> None:
    await _kiosk_state(db)
    svc = open_alerts(db, _config(tmp_path), packs)
    await svc.check(T0)
    by_kind = {str(a.kind): a for a in svc.pending()}
    sent = [json.loads(p.read_text()) for p in (tmp_path / "drop").glob("*.json")]
    assert len(sent) == 4
    for msg in sent:
        assert msg["text"] == packs.default.render(msg["prompt_id"], by_kind[msg["alert"]].slots).display
    assert any("95598" not in m["text"] and "920" in m["text"] for m in sent)  # the cashbox count


async def test_customers_see_the_hall_phone_while_no_staff_are_there(db: Database, tmp_path: Path) -> None:
    svc = AlertService(db, _config(tmp_path))
    assert svc.customer_notice(T0) is None  # Wednesday 10:00
    evening = datetime(2025, 3, 5, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    prompt, slots = svc.customer_notice(evening)
    assert prompt == Prompt.ALERT_NO_STAFF_NOTICE and slots["phone"].text == "95598"
    await _kiosk_state(db)
    await svc.check(T0)
    prompt, _ = svc.customer_notice(evening)
    assert prompt == Prompt.ALERT_CHANGE_NOTICE
    unstaffed = AlertService(db, _config(tmp_path, staff_hours=[]))
    assert unstaffed.customer_notice(T0) is not None


# ----------------------------------------------------------------------------- notifiers


async def test_command_notifier_gets_the_alert_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "msg.json"
    n = CommandNotifier(["sh", "-c", f'printf "%s\\n" "$KIOSK_ALERT_KIND" > {tmp_path}/kind; cat > {out}'])
    await n.notify("alert", {"subject": "cashbox", "text": "钱箱快满了"})
    assert json.loads(out.read_text()) == {"kind": "alert", "subject": "cashbox", "text": "钱箱快满了"}
    assert (tmp_path / "kind").read_text().strip() == "alert"
    with pytest.raises(NotifyError, match="failed \\(3\\)"):
        await CommandNotifier(["sh", "-c", "echo no line >&2; exit 3"]).notify("alert", {})
    with pytest.raises(NotifyError, match="cannot run"):
        await CommandNotifier([str(tmp_path / "missing")]).notify("alert", {})
    with pytest.raises(NotifyError, match="did not finish"):
        await CommandNotifier(["sleep", "5"], timeout_s=0.2).notify("alert", {})


async def test_webhook_notifier_posts_json(tmp_path: Path) -> None:
    got: list[bytes] = []
    status = [204]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        await WebhookNotifier(url, timeout_s=2).notify("alert", {"subject": "notes:1000"})
        assert json.loads(got[0]) == {"kind": "alert", "subject": "notes:1000"}
        status[0] = 500
        with pytest.raises(NotifyError, match="500"):
            await WebhookNotifier(url, timeout_s=2).notify("alert", {})
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(NotifyError):
        await WebhookNotifier(url, timeout_s=1).notify("alert", {})  # nobody listens any more


async def test_file_drop_writes_whole_files(tmp_path: Path) -> None:
    n = FileDropNotifier(tmp_path / "drop")
    await asyncio.gather(*(n.notify("alert", {"i": i}) for i in range(5)))
    files = sorted((tmp_path / "drop").iterdir())
    assert len(files) == 5 and all(not f.name.startswith(".") for f in files)
    assert sorted(json.loads(f.read_text())["i"] for f in files) == [0, 1, 2, 3, 4]


def test_the_notifier_is_chosen_in_config(tmp_path: Path) -> None:
    from assistant.errors import ConfigError

    assert isinstance(make_notifier(Config.default()), LogNotifier)
    assert isinstance(make_notifier(_config(tmp_path)), FileDropNotifier)
    assert isinstance(make_notifier(Config.default(alerts={"notifier": "command", "command": "true"})),
                      CommandNotifier)
    with pytest.raises(ConfigError, match="webhook_url"):
        make_notifier(Config.default(alerts={"notifier": "webhook"}))
    with pytest.raises(ConfigError, match="notifier must be one of"):
        make_notifier(Config.default(alerts={"notifier": "pager"}))
