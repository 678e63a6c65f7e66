"""Alerts for halls with few or no staff: change running out, cassettes filling up, faults that last.

:class:`AlertService` watches the kiosk's own books (``cash_unit``, ``cash_movement``,
``cash_exchange``), the latest cash plan and the device faults it is told about, and
raises an :class:`Alert` when

* **change runs out before the next collection**: a denomination's stock, at the
  rate the last ``burn_window_days`` paid it out (net of what customers put back),
  is gone before the next collection (the last collection plus the planned cycle);
* **the cashbox nears capacity** (or will be full before the next collection at the
  current rate), or **a hopper denomination** does;
* **the cash held nears the insured limit** (or will pass it before the collection);
* **a fault persists** longer than ``fault_minutes``.

Each alert carries a prompt id and slots (its text comes from the locale pack), the
figures behind it and a recommended action. It is logged, stored (table ``alert``),
shown to staff (:meth:`AlertService.pending`) and sent through the configured
:class:`~assistant.kiosk.Notifier`: a command (the alert as JSON on its stdin), a
webhook (HTTP POST of the JSON), or a file drop (one JSON file per alert, written
atomically), repeated every ``repeat_minutes`` until it clears or staff acknowledge
it. While no staff are on duty (``staff_hours``), :meth:`AlertService.customer_notice`
gives the prompt that shows customers the hall's phone number.

For the runtime: ``await alerts.check(now)`` after each payment and every
``check_interval_s`` (or ``await alerts.run(stop)``), ``alerts.observe(event)`` for each
:class:`~assistant.messages.CashEvent` (faults), ``alerts.pending()`` for the staff menu.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import shlex
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from assistant.backoffice import BackofficeSection, backoffice_section, parse_stamp, tz, utc_stamp
from assistant.config import Config
from assistant.errors import ConfigError, KioskError
from assistant.kiosk import LogNotifier, Notifier
from assistant.messages import Amount, CashEvent, CashEventKind, Count, Digits
from assistant.prompts import Label, Prompt
from assistant.storage import Database

log = logging.getLogger(__name__)

NOTIFIERS = ("log", "command", "webhook", "file")
TRANSIENT = frozenset({"note_without_payment", "coin_without_payment"})
"""Cash events reported as faults that are over when reported (cash with no payment: reconciliation lists it)."""


class NotifyError(KioskError):
    """A notification could not be delivered (it is tried again at the next check)."""


@dataclass(frozen=True)
class AlertsSection:
    """The ``[alerts]`` section."""

    notifier: str = "log"
    """Where alerts go besides the log and the staff menu: log, command, webhook or file."""
    command: str = ""
    """notifier = "command": the command line; it gets the alert as JSON on stdin."""
    webhook_url: str = ""
    """notifier = "webhook": the URL the alert JSON is POSTed to."""
    drop_dir: str = "alerts"
    """notifier = "file": folder (inside the data folder unless absolute) for one JSON file per alert."""
    timeout_s: float = 10.0
    """Longest wait for a command or a webhook."""
    cycle_days: int = 0
    """Days between collections; 0 = the kiosk's latest cash plan (1 day if there is none)."""
    burn_window_days: int = 7
    """How far back the rate change is paid out at (and cash comes in at) is measured."""
    change_margin_hours: float = 2.0
    """Alert when a denomination would run out less than this before the next collection."""
    cashbox_warn_ratio: float = 0.9
    """Alert when the cashbox is this full."""
    hopper_warn_ratio: float = 0.9
    """Alert when a hopper denomination is this full."""
    insured_warn_ratio: float = 0.9
    """Alert when the cash held reaches this share of the insured limit."""
    fault_minutes: float = 15.0
    """A fault lasting longer than this raises an alert."""
    check_interval_s: float = 300.0
    """How often :meth:`AlertService.run` checks."""
    repeat_minutes: float = 120.0
    """An alert nobody acknowledged is sent again after this long."""
    staff_hours: tuple[str, ...] = ("08:30-17:30",)
    """Local times staff are in the hall (``HH:MM-HH:MM``); empty = never (an unstaffed hall)."""
    staff_weekdays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    """Days staff are in (1 = Monday)."""

    def __post_init__(self) -> None:
        if self.notifier not in NOTIFIERS:
            raise ConfigError(f"[alerts] notifier must be one of {', '.join(NOTIFIERS)}, got {self.notifier!r}")
        if self.notifier == "command" and not self.command.strip():
            raise ConfigError("[alerts] notifier = \"command\" needs command = \"...\"")
        if self.notifier == "webhook" and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError("[alerts] notifier = \"webhook\" needs webhook_url = \"http(s)://...\"")
        if self.burn_window_days < 1 or self.cycle_days < 0:
            raise ConfigError("[alerts] burn_window_days must be >= 1 and cycle_days >= 0")
        for span in self.staff_hours:
            _span(span)
        if any(d not in range(1, 8) for d in self.staff_weekdays):
            raise ConfigError("[alerts] staff_weekdays are 1 (Monday) .. 7 (Sunday)")


def _span(text: str) -> tuple[time, time]:
    try:
        a, b = (time.fromisoformat(x.strip()) for x in text.split("-", 1))
    except ValueError:
        raise ConfigError(f"[alerts] staff_hours: {text!r} is not HH:MM-HH:MM") from None
    return a, b


# ============================================================================ notifiers


def _payload(kind: str, detail: Mapping[str, Any]) -> bytes:
    return json.dumps({"kind": kind, **detail}, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")


class CommandNotifier(Notifier):
    """Runs a command for each notification, with the notification as JSON on its stdin.

    ``KIOSK_ALERT_KIND`` is set in its environment. A command that fails or hangs
    raises :class:`NotifyError`.
    """

    def __init__(self, argv: list[str], timeout_s: float = 10.0) -> None:
        if not argv:
            raise ConfigError("[alerts] command is empty")
        self.argv = argv
        self.timeout_s = timeout_s

    async def notify(self, kind: str, detail: dict[str, Any]) -> None:
        env = {**os.environ, "KIOSK_ALERT_KIND": kind}
        try:
            proc = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.PIPE,
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE, env=env)
        except OSError as exc:
            raise NotifyError(f"alert command {self.argv[0]!r} cannot run: {exc}") from None
        try:
            _, err = await asyncio.wait_for(proc.communicate(_payload(kind, detail)), self.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NotifyError(f"alert command {self.argv[0]!r} did not finish in {self.timeout_s:g} s") from None
        if proc.returncode:
            raise NotifyError(f"alert command {self.argv[0]!r} failed ({proc.returncode}): "
                              f"{err.decode(errors='replace').strip()[:200]}")


class WebhookNotifier(Notifier):
    """POSTs each notification as JSON to a URL (a non-2xx answer or no answer raises :class:`NotifyError`)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    async def notify(self, kind: str, detail: dict[str, Any]) -> None:
        body = _payload(kind, detail)

        def post() -> int:
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json; charset=utf-8"})
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return int(resp.status)

        try:
            status = await asyncio.wait_for(asyncio.to_thread(post), self.timeout_s + 1)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise NotifyError(f"alert webhook {self.url}: {exc}") from None
        if not 200 <= status < 300:
            raise NotifyError(f"alert webhook {self.url} answered {status}")


class FileDropNotifier(Notifier):
    """Writes each notification as a JSON file into a folder (temporary name, then renamed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._n = 0

    async def notify(self, kind: str, detail: dict[str, Any]) -> None:
        self._n += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}-{self._n}-{kind}.json"

        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{name}.tmp"
            tmp.write_bytes(_payload(kind, detail))
            os.replace(tmp, self.folder / name)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise NotifyError(f"alert drop folder {self.folder}: {exc}") from None


def make_notifier(config: Config) -> Notifier:
    """The notifier ``[alerts] notifier`` names."""
    section = config.section("alerts", AlertsSection)
    if section.notifier == "command":
        return CommandNotifier(shlex.split(section.command), section.timeout_s)
    if section.notifier == "webhook":
        return WebhookNotifier(section.webhook_url, section.timeout_s)
    if section.notifier == "file":
        folder = Path(section.drop_dir)
        return FileDropNotifier(folder if folder.is_absolute() else config.data_dir / folder)
    return LogNotifier()


# ============================================================================ alerts


class AlertKind(StrEnum):
    """What an alert is about."""

    CHANGE_LOW = "change_low"
    CASHBOX_FULL = "cashbox_full"
    HOPPER_FULL = "hopper_full"
    INSURED_LIMIT = "insured_limit"
    FAULT = "fault"


class Action(StrEnum):
    """What staff (or the bank) should do."""

    REFILL = "refill"
    """Bring and load change early."""
    COLLECT = "collect"
    """Collect the cash early (escort visit)."""
    EMPTY_HOPPER = "empty_hopper"
    """Take coins out of the hopper."""
    REPAIR = "repair"
    """Send someone to clear the fault."""


@dataclass(frozen=True)
class Alert:
    """One active alert."""

    kind: AlertKind
    subject: str
    """What it is about, e.g. ``notes:1000``, ``cashbox``, ``notes:note_jam``."""
    prompt_id: Prompt
    """The staff text in the locale pack."""
    slots: Mapping[str, Any]
    """Slot values for the prompt (Amount, Count, Label ...)."""
    action: Action
    facts: Mapping[str, Any] = field(default_factory=dict)
    """The figures behind it (plain numbers), for the log and the notification."""
    raised_at: str = ""
    id: int = 0
    acknowledged: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """(kind, subject): one alert per key is active at a time."""
        return (str(self.kind), self.subject)


def plain(value: Any) -> Any:
    """A slot value as JSON: fen for amounts, numbers for counts, the id for labels."""
    if isinstance(value, Amount):
        return {"fen": value.fen}
    if isinstance(value, Count):
        return value.value
    if isinstance(value, Digits):
        return value.text
    return str(value)


_DEVICE_LABELS = {"notes": Label.DEVICE_NOTES, "coins": Label.DEVICE_COINS, "cashbox": Label.DEVICE_CASHBOX,
                  "printer": Label.DEVICE_PRINTER, "camera": Label.DEVICE_CAMERA, "billing": Label.DEVICE_BILLING}


class AlertService:
    """Raises, clears, stores and sends the kiosk's alerts.

    Args:
        db: the kiosk database.
        config: the kiosk config (``[alerts]``, ``[backoffice]``, ``[kiosk]``).
        notifier: where alerts are sent (default: the one ``[alerts] notifier`` names).
        render: prompt id, slots -> text in the default locale pack, put into each
            notification for people reading it on a phone (optional).
        kiosk_id: this kiosk (default ``[kiosk] id``).
    """

    def __init__(self, db: Database, config: Config, notifier: Notifier | None = None, *,
                 render: Callable[[str, Mapping[str, Any]], str] | None = None, kiosk_id: str | None = None) -> None:
        self.db = db
        self.section = config.section("alerts", AlertsSection)
        self.backoffice: BackofficeSection = backoffice_section(config)
        self.zone = tz(self.backoffice)
        self.notifier = notifier or make_notifier(config)
        self.render = render
        self.kiosk_id = kiosk_id or config.kiosk.id
        self.hall = config.kiosk.hall
        self.hall_phone = config.kiosk.hall_phone
        self._active: dict[tuple[str, str], Alert] = {}
        self._notified: dict[tuple[str, str], datetime] = {}
        self._faults: dict[str, datetime] = {}
        self._loaded = False

    # ------------------------------------------------------------------ inputs
    def observe(self, event: CashEvent) -> None:
        """Note a cash event: faults start (``FAULT``) and end (``FAULT_CLEARED``) here."""
        if event.event == CashEventKind.FAULT and event.detail:
            self.fault(event.detail, True)
        elif event.event == CashEventKind.FAULT_CLEARED and event.detail:
            self.fault(event.detail, False)

    def fault(self, name: str, active: bool, at: datetime | None = None) -> None:
        """A device fault (``unit:fault``, e.g. ``notes:note_jam``) started or ended."""
        if name.split(":", 1)[-1] in TRANSIENT:
            return
        if active:
            self._faults.setdefault(name, at or datetime.now(UTC))
        else:
            unit = name.split(":", 1)[0]
            for key in [k for k in self._faults if k == name or (name.endswith(":link") and k.startswith(unit))]:
                del self._faults[key]

    # ------------------------------------------------------------------ outputs
    def pending(self) -> list[Alert]:
        """Active alerts, oldest first (for the staff menu)."""
        return sorted(self._active.values(), key=lambda a: (a.raised_at, a.id))

    def staff_present(self, now: datetime | None = None) -> bool:
        """True during ``staff_hours`` on ``staff_weekdays`` (local time)."""
        local = (now or datetime.now(UTC)).astimezone(self.zone)
        if local.isoweekday() not in self.section.staff_weekdays:
            return False
        t = local.time()
        return any(a <= t < b for a, b in (_span(s) for s in self.section.staff_hours))

    def customer_notice(self, now: datetime | None = None) -> tuple[Prompt, Mapping[str, Any]] | None:
        """While no staff are present: the prompt (and slots) that shows customers the hall's phone number."""
        if self.staff_present(now):
            return None
        slots = MappingProxyType({"phone": Digits(self.hall_phone)})
        if any(a.kind == AlertKind.CHANGE_LOW for a in self._active.values()):
            return Prompt.ALERT_CHANGE_NOTICE, slots
        return Prompt.ALERT_NO_STAFF_NOTICE, slots

    async def acknowledge(self, alert_id: int, staff_id: int | None = None) -> None:
        """Staff have seen an alert: it stays on the list but is not sent again."""
        for key, a in list(self._active.items()):
            if a.id == alert_id:
                self._active[key] = Alert(a.kind, a.subject, a.prompt_id, a.slots, a.action, a.facts, a.raised_at,
                                          a.id, True)
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE alert SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
                             (utc_stamp(datetime.now(UTC)), staff_id, alert_id))

    # ------------------------------------------------------------------ checking
    async def check(self, now: datetime | None = None) -> list[Alert]:
        """Evaluate every rule; raise new alerts, clear gone ones, send what is due. Returns the new ones."""
        now = now or datetime.now(UTC)
        if not self._loaded:
            await self._load()
        found = {a.key: a for a in await self.evaluate(now)}
        new: list[Alert] = []
        stamp = utc_stamp(now)
        for key, a in found.items():
            if key in self._active:
                old = self._active[key]  # keep its id, time and acknowledgement; refresh the figures
                self._active[key] = Alert(a.kind, a.subject, a.prompt_id, a.slots, a.action, a.facts, old.raised_at,
                                          old.id, old.acknowledged)
                continue
            async with self.db.transaction() as tx:
                cur = await tx.execute("INSERT INTO alert(kind, subject, detail, raised_at) VALUES (?, ?, ?, ?)",
                                       (str(a.kind), a.subject, json.dumps(self._detail(a), sort_keys=True,
                                                                           default=str), stamp))
                a = Alert(a.kind, a.subject, a.prompt_id, a.slots, a.action, a.facts, stamp, int(cur.lastrowid or 0))
            self._active[key] = a
            new.append(a)
            log.warning("alert raised: %s %s %s", a.kind, a.subject, dict(a.facts))
        for key in [k for k in self._active if k not in found]:
            gone = self._active.pop(key)
            self._notified.pop(key, None)
            async with self.db.transaction() as tx:
                await tx.execute("UPDATE alert SET cleared_at = ? WHERE id = ?", (stamp, gone.id))
            log.info("alert cleared: %s %s", gone.kind, gone.subject)
        await self._send(now)
        return new

    async def _send(self, now: datetime) -> None:
        repeat = timedelta(minutes=self.section.repeat_minutes)
        for key, a in self._active.items():
            last = self._notified.get(key)
            if a.acknowledged or (last is not None and now - last < repeat):
                continue
            try:
                await self.notifier.notify("alert", self._detail(a))
            except Exception as exc:  # a broken channel must not stop the kiosk; tried again next check
                log.error("alert %s %s not sent: %s", a.kind, a.subject, exc)
                continue
            self._notified[key] = now
            async with self.db.transaction() as tx:
                await tx.execute("UPDATE alert SET notified_at = ? WHERE id = ?", (utc_stamp(now), a.id))

    def _detail(self, a: Alert) -> dict[str, Any]:
        out = {"alert": str(a.kind), "subject": a.subject, "kiosk_id": self.kiosk_id, "hall": self.hall,
               "hall_phone": self.hall_phone, "action": str(a.action), "prompt_id": str(a.prompt_id),
               "slots": {k: plain(v) for k, v in a.slots.items()}, "facts": dict(a.facts),
               "raised_at": a.raised_at, "id": a.id}
        if self.render is not None:
            with contextlib.suppress(Exception):
                out["text"] = self.render(str(a.prompt_id), a.slots)
        return out

    async def _load(self) -> None:
        """Alerts still open from before a restart count as raised and sent."""
        self._loaded = True
        for r in await self.db.fetchall("SELECT * FROM alert WHERE cleared_at IS NULL ORDER BY id"):
            d = json.loads(r["detail"] or "{}")
            try:
                kind, prompt_id, action = AlertKind(r["kind"]), Prompt(d["prompt_id"]), Action(d["action"])
            except (KeyError, ValueError):
                continue
            a = Alert(kind, r["subject"], prompt_id, MappingProxyType({}), action, d.get("facts", {}),
                      r["raised_at"], int(r["id"]), r["acknowledged_at"] is not None)
            self._active[a.key] = a
            if r["notified_at"]:
                self._notified[a.key] = parse_stamp(r["notified_at"])

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``check_interval_s`` until ``stop`` is set (errors are logged, never raised)."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("alert check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.section.check_interval_s)

    # ------------------------------------------------------------------ rules
    async def evaluate(self, now: datetime) -> list[Alert]:
        """The alerts the current state calls for (nothing stored or sent)."""
        s, bo = self.section, self.backoffice
        books: dict[tuple[str, int], int] = {}
        for r in await self.db.fetchall("SELECT unit, denomination_fen, count FROM cash_unit"):
            books[(r[0], int(r[1]))] = int(r[2])
        window_start = now - timedelta(days=s.burn_window_days)
        rows = await self.db.fetchall(
            "SELECT unit, denomination_fen, sum(CASE WHEN delta > 0 THEN delta ELSE 0 END), "
            "sum(CASE WHEN delta < 0 THEN -delta ELSE 0 END), min(at) FROM cash_movement "
            "WHERE at >= ? AND at < ? AND reason IN ('stacked', 'accepted', 'dispensed', 'missing', 'unassigned') "
            "GROUP BY unit, denomination_fen", (utc_stamp(window_start), utc_stamp(now)))
        first = min((parse_stamp(r[4]) for r in rows), default=now)
        span_days = max((now - max(first, window_start)).total_seconds() / 86400, 1 / 24)
        flow_in = {(r[0], int(r[1])): int(r[2]) / span_days for r in rows}
        flow_out = {(r[0], int(r[1])): int(r[3]) / span_days for r in rows}
        next_collection = await self._next_collection(now)
        hours_left = max(0.0, (next_collection - now).total_seconds() / 3600)
        plan = await self._plan_float()
        out: list[Alert] = []
        # change running out before the next collection
        for (unit, value), count in sorted(books.items()):
            if unit not in ("notes", "coins"):
                continue
            burn = flow_out.get((unit, value), 0.0) - flow_in.get((unit, value), 0.0)  # net pieces per day
            if burn <= 0:
                continue
            hours_to_empty = count / burn * 24
            if hours_to_empty >= hours_left + s.change_margin_hours:
                continue
            target = plan.get((unit, value)) or math.ceil(burn * hours_left / 24)
            refill = max(1, math.ceil(burn * hours_left / 24) - count, target - count)
            out.append(Alert(AlertKind.CHANGE_LOW, f"{unit}:{value}", Prompt.ALERT_CHANGE_LOW,
                             MappingProxyType({"denomination": Amount(value), "count": Count(count),
                                               "hours": Count(int(hours_to_empty)), "refill": Count(refill)}),
                             Action.REFILL,
                             {"count": count, "net_out_per_day": round(burn, 1), "hours_to_empty": round(hours_to_empty, 1),
                              "hours_to_collection": round(hours_left, 1), "refill": refill}))
        # cashbox filling up
        cashbox = sum(n for (u, _), n in books.items() if u == "cashbox")
        cb_rate = sum(r for (u, _), r in flow_in.items() if u == "cashbox")
        cap = bo.cashbox_capacity
        hours_to_full = (cap - cashbox) / cb_rate * 24 if cb_rate > 0 else math.inf
        if cashbox >= s.cashbox_warn_ratio * cap or hours_to_full < hours_left:
            out.append(Alert(AlertKind.CASHBOX_FULL, "cashbox", Prompt.ALERT_CASHBOX_FULL,
                             MappingProxyType({"count": Count(cashbox), "capacity": Count(cap),
                                               "hours": Count(max(0, int(hours_to_full)) if hours_to_full < math.inf
                                                              else 0)}),
                             Action.COLLECT, {"notes": cashbox, "capacity": cap, "notes_in_per_day": round(cb_rate, 1),
                                              "hours_to_collection": round(hours_left, 1)}))
        # hopper denominations filling up
        for value, cap_v in sorted(bo.hopper_capacity().items()):
            count = books.get(("coins", value), 0)
            net_in = flow_in.get(("coins", value), 0.0) - flow_out.get(("coins", value), 0.0)
            grows_full = net_in > 0 and count + net_in * hours_left / 24 > cap_v
            if cap_v and (count >= s.hopper_warn_ratio * cap_v or grows_full):
                out.append(Alert(AlertKind.HOPPER_FULL, f"coins:{value}", Prompt.ALERT_HOPPER_FULL,
                                 MappingProxyType({"denomination": Amount(value), "count": Count(count),
                                                   "capacity": Count(cap_v)}),
                                 Action.EMPTY_HOPPER, {"count": count, "capacity": cap_v}))
        # cash held against the insured limit
        held = sum(v * n for (_, v), n in books.items())
        net_fen = sum(k[1] * (flow_in.get(k, 0.0) - flow_out.get(k, 0.0)) for k in set(flow_in) | set(flow_out))
        limit = bo.insured_limit_fen
        if held >= s.insured_warn_ratio * limit or held + max(0.0, net_fen) * hours_left / 24 > limit:
            out.append(Alert(AlertKind.INSURED_LIMIT, "cash", Prompt.ALERT_INSURED_LIMIT,
                             MappingProxyType({"amount": Amount(held), "limit": Amount(limit)}), Action.COLLECT,
                             {"held_fen": held, "limit_fen": limit, "net_in_fen_per_day": round(net_fen),
                              "hours_to_collection": round(hours_left, 1)}))
        # faults that last
        for name, since in sorted(self._faults.items()):
            minutes = (now - since).total_seconds() / 60
            if minutes < s.fault_minutes:
                continue
            device = name.split(":", 1)[0]
            out.append(Alert(AlertKind.FAULT, name, Prompt.ALERT_FAULT,
                             MappingProxyType({"device": _DEVICE_LABELS.get(device, device),
                                               "minutes": Count(int(minutes))}),
                             Action.REPAIR, {"fault": name, "since": utc_stamp(since), "minutes": int(minutes)}))
        return out

    async def _next_collection(self, now: datetime) -> datetime:
        row = await self.db.fetchone("SELECT max(ended_at) FROM cash_exchange WHERE state = 'closed'")
        last = row[0] if row and row[0] else None
        if last is None:
            row = await self.db.fetchone("SELECT min(at) FROM cash_movement")
            last = row[0] if row and row[0] else None
        if last is None:
            return now
        return parse_stamp(last) + timedelta(days=await self._cycle_days())

    async def _cycle_days(self) -> int:
        if self.section.cycle_days:
            return self.section.cycle_days
        row = await self.db.fetchone("SELECT cycle_days FROM cash_plan WHERE kiosk_id = ? ORDER BY id DESC LIMIT 1",
                                     (self.kiosk_id,))
        return int(row[0]) if row else 1

    async def _plan_float(self) -> dict[tuple[str, int], int]:
        row = await self.db.fetchone("SELECT float FROM cash_plan WHERE kiosk_id = ? ORDER BY id DESC LIMIT 1",
                                     (self.kiosk_id,))
        if row is None:
            return {}
        body = json.loads(row[0])
        return {(unit, int(v)): int(n) for unit, counts in body.items() for v, n in counts.items()}


def open_alerts(db: Database, config: Config, packs: Any = None, notifier: Notifier | None = None) -> AlertService:
    """The alert service as the runtime runs it: the configured notifier, texts from the default pack.

    Args:
        db: the open kiosk database.
        config: the kiosk config.
        packs: the locale packs (``LocaleRegistry``); their default pack renders the text
            put into each notification. None: notifications carry ids and slots only.
        notifier: override the configured channel (e.g. the runtime's own).
    """
    render = None
    if packs is not None:
        def render(prompt_id: str, slots: Mapping[str, Any]) -> str:
            return packs.default.render(prompt_id, slots).display
    return AlertService(db, config, notifier, render=render)
