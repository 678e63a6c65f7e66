"""Hash-chained audit log of staff actions and security events.

Each entry's hash covers the previous entry's hash and the entry's own content,
so editing or deleting any past entry breaks every hash after it; :func:`verify`
finds the first broken link. Entries are appended inside ``BEGIN IMMEDIATE`` so two
writers can never chain onto the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from assistant.storage import Database

GENESIS = "0" * 64


def _digest(prev_hash: str, at: str, staff_id: int | None, action: str, detail: str) -> str:
    body = json.dumps([prev_hash, at, staff_id, action, detail], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One audit record."""

    id: int
    at: str
    staff_id: int | None
    action: str
    detail: dict[str, Any]
    hash: str


async def record(db: Database, action: str, staff_id: int | None = None, **detail: Any) -> AuditEntry:
    """Append an audit entry (never include a card number or a PIN in ``detail``)."""
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        row = await cur.fetchone()
        prev = row["hash"] if row else GENESIS
        cur = await tx.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
        (at,) = await cur.fetchone()
        digest = _digest(prev, at, staff_id, action, text)
        cur = await tx.execute(
            "INSERT INTO audit_log(at, staff_id, action, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (at, staff_id, action, text, prev, digest),
        )
        entry_id = int(cur.lastrowid or 0)
    return AuditEntry(entry_id, at, staff_id, action, detail, digest)


async def entries(db: Database, action: str | None = None) -> list[AuditEntry]:
    """Audit entries in order (optionally one action only)."""
    sql = "SELECT id, at, staff_id, action, detail, hash FROM audit_log"
    params: tuple[Any, ...] = ()
    if action:
        sql += " WHERE action = ?"
        params = (action,)
    rows = await db.fetchall(sql + " ORDER BY id", params)
    return [
        AuditEntry(r["id"], r["at"], r["staff_id"], r["action"], json.loads(r["detail"]), r["hash"])
        for r in rows
    ]


async def verify(db: Database) -> int | None:
    """The id of the first entry whose chain is broken, or None if the log is intact."""
    prev = GENESIS
    for r in await db.fetchall(
        "SELECT id, at, staff_id, action, detail, prev_hash, hash FROM audit_log ORDER BY id"
    ):
        if r["prev_hash"] != prev or _digest(prev, r["at"], r["staff_id"], r["action"], r["detail"]) != r["hash"]:
            return int(r["id"])
        prev = r["hash"]
    return None
