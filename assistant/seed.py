"""Demo data: customers with arrears in the embedded ledger, linked four-account records, staff.

The data lives in ``config/demo_customers.yaml`` (no names or addresses in Python).
Seeding is idempotent: running it twice leaves the same state.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.config import ROOT
from assistant.customers import CustomerDirectory
from assistant.errors import StorageError
from assistant.storage import Database

DEMO_FILE = ROOT / "config" / "demo_customers.yaml"


@dataclass(frozen=True)
class SeedReport:
    """What seeding did."""

    customers: int
    bills: int
    staff: int
    face_photos: dict[int, Path] = field(default_factory=dict)
    """login user id -> the photo to enrol (enrolment needs the face models)."""


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash of a staff PIN, as ``salt$hash`` in hex."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"{salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str) -> bool:
    """True when ``pin`` matches a hash made by :func:`hash_pin` (constant-time compare)."""
    try:
        salt_hex, _ = stored.split("$", 1)
        expected = hash_pin(pin, bytes.fromhex(salt_hex))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)


def load_demo(path: Path = DEMO_FILE) -> dict[str, Any]:
    """Read the demo data file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StorageError(f"{path}: cannot read demo data: {exc}") from None
    if not isinstance(data, dict) or "customers" not in data:
        raise StorageError(f"{path}: expected a 'customers' list")
    return data


async def seed(db: Database, data_dir: Path, path: Path = DEMO_FILE) -> SeedReport:
    """Load the demo customers, bills and staff into ``db`` (idempotent)."""
    data = load_demo(path)
    directory = CustomerDirectory(db)
    n_bills = 0
    photos: dict[int, Path] = {}
    for c in data["customers"]:
        account_no = str(c["account_no"])
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO billing_customer(account_no, holder_name, address, prepaid_fen) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(account_no) DO NOTHING",
                (account_no, c["name"], c.get("address", ""), int(c.get("prepaid_fen", 0))),
            )
            for bill in c.get("bills", []):
                cur = await tx.execute(
                    "INSERT INTO billing_bill(account_no, period, amount_fen) VALUES (?, ?, ?) "
                    "ON CONFLICT(account_no, period) DO NOTHING",
                    (account_no, str(bill["period"]), int(bill["amount_fen"])),
                )
                n_bills += cur.rowcount
        if c.get("phone"):
            user_id = await directory.link(
                phone=str(c["phone"]),
                name=c["name"],
                accounts=[account_no],
                default_method=c.get("default_method", "cash"),
                wallet_no=c.get("wallet_no"),
            )
            if c.get("face_photo"):
                photos[user_id] = data_dir / "data" / str(c["face_photo"])
    n_staff = 0
    for s in data.get("staff", []):
        async with db.transaction() as tx:
            cur = await tx.execute("SELECT 1 FROM staff WHERE staff_no = ?", (s["staff_no"],))
            if await cur.fetchone() is None:
                await tx.execute(
                    "INSERT INTO staff(staff_no, name, role, pin_hash) VALUES (?, ?, ?, ?)",
                    (s["staff_no"], s["name"], s["role"], hash_pin(str(s["pin"]))),
                )
                n_staff += 1
    return SeedReport(
        customers=len(data["customers"]), bills=n_bills, staff=n_staff, face_photos=photos
    )
