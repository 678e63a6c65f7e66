"""First-visit enrolment, guided by staff: the data side.

The dialog (``assistant.dialog``) walks staff and customer through the steps; this
module keeps what has been gathered so far — in memory only — and links the four
accounts, the consent record and the face embeddings in **one transaction** at the
end. Leaving midway discards everything, so nothing is ever half-linked. The card
number read by OCR lives here only until the bank has turned it into a token.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant import audit
from assistant.billing import AccountInfo, Billing
from assistant.customers import METHODS, CustomerDirectory
from assistant.errors import KioskError
from assistant.payments import CardToken, CardTokenizer
from assistant.storage import Database

log = logging.getLogger(__name__)


class EnrolmentError(KioskError):
    """A step of the enrolment cannot be completed as asked."""

    prompt_id = "enrol_failed"


class AccountTaken(EnrolmentError):
    """The electricity account is already linked to another customer."""

    prompt_id = "enrol_account_taken"


class PhoneTaken(EnrolmentError):
    """The phone number is already the login of a registered customer (or staff member)."""

    prompt_id = "enrol_phone_taken"


class FaceInconsistent(EnrolmentError):
    """The captured frames are not all of the same person."""

    prompt_id = "enrol_face_inconsistent"


class FaceEnroller(abc.ABC):
    """Stores a customer's face embeddings (encrypted) in the gallery."""

    @abc.abstractmethod
    async def enrol_in(self, tx: Any, user_id: int, embeddings: list[np.ndarray]) -> int:
        """Store ``embeddings`` for ``user_id`` inside the open transaction ``tx``; returns rows written."""


@dataclass
class EnrolmentDraft:
    """What has been gathered so far (nothing is stored until :meth:`Enrolments.commit`)."""

    staff_id: int
    face_consent: bool | None = None
    phone: str = ""
    name: str = ""
    accounts: list[str] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    card: CardToken | None = None
    default_method: str = "cash"


FACE_FRAMES_NEEDED = 3
SAME_PERSON_MIN_COSINE = 0.45


class Enrolments:
    """Runs the data side of enrolments.

    Args:
        db: the kiosk database.
        billing: to check account numbers and find the holder's name.
        customers: the four-account model.
        faces: the face gallery (None: enrolment without face).
        tokenizer: the bank's card tokenizer (None: no card binding).
    """

    def __init__(
        self,
        db: Database,
        billing: Billing,
        customers: CustomerDirectory,
        faces: FaceEnroller | None = None,
        tokenizer: CardTokenizer | None = None,
    ) -> None:
        self.db = db
        self.billing = billing
        self.customers = customers
        self.faces = faces
        self.tokenizer = tokenizer
        self.draft: EnrolmentDraft | None = None
        self._card_number: str | None = None
        self._card_issuer = ""

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, staff_id: int) -> EnrolmentDraft:
        """Begin a new enrolment for a verified staff member (drops any earlier draft)."""
        self.discard()
        self.draft = EnrolmentDraft(staff_id=staff_id)
        return self.draft

    def discard(self) -> None:
        """Forget everything gathered (customer left, cancelled, or timed out)."""
        if self.draft is not None:
            self.draft.embeddings.clear()
        self.draft = None
        self._card_number = None
        self._card_issuer = ""

    # -- steps -------------------------------------------------------------------------
    async def check_phone(self, phone: str) -> None:
        """Refuse a phone number that is already someone's login.

        Linking to an existing login would fold the new person's face, card and accounts
        into that customer's record (their face would then pay with that customer's card).
        """
        if await self.db.fetchone("SELECT 1 FROM login_user WHERE phone = ?", (phone,)):
            raise PhoneTaken("this phone number is already registered")

    async def check_account(self, account_no: str, phone: str) -> AccountInfo:
        """The account as billing knows it; refuses one linked to another customer."""
        info = await self.billing.account(account_no)
        linked = await self.customers.by_account(account_no)
        if linked is not None and linked.phone != phone:
            raise AccountTaken(f"account {account_no} is linked to another customer")
        return info

    def add_face_frame(self, embedding: np.ndarray) -> int:
        """Keep one good frame's embedding (unit vector); returns how many are kept."""
        assert self.draft is not None
        v = np.asarray(embedding, dtype=np.float32)
        self.draft.embeddings.append(v / (np.linalg.norm(v) or 1.0))
        return len(self.draft.embeddings)

    def face_ready(self) -> bool:
        """True when enough consistent frames are kept."""
        return self.draft is not None and len(self.draft.embeddings) >= FACE_FRAMES_NEEDED

    def check_face_consistency(self) -> None:
        """All kept frames must show the same person; otherwise start the capture again."""
        assert self.draft is not None
        embs = self.draft.embeddings
        for i in range(len(embs)):
            for j in range(i + 1, len(embs)):
                if float(embs[i] @ embs[j]) < SAME_PERSON_MIN_COSINE:
                    embs.clear()
                    raise FaceInconsistent("captured frames are not of one person")

    def hold_card(self, number: str, issuer: str) -> None:
        """Keep a card number read by OCR, in memory only, until it is confirmed."""
        self._card_number = number
        self._card_issuer = issuer

    def card_digits(self) -> str:
        """The held card number for the read-back (never logged)."""
        return self._card_number or ""

    async def bind_card(self) -> CardToken:
        """Exchange the held card number for the bank's token; the number is then dropped."""
        assert self.draft is not None
        if self.tokenizer is None or not self._card_number:
            raise EnrolmentError("no card to bind")
        token = await self.tokenizer.tokenize(self._card_number, self._card_issuer)
        self._card_number = None
        self.draft.card = token
        return token

    def set_default_method(self, method: str) -> None:
        """Remember the customer's default payment method."""
        assert self.draft is not None
        if method not in METHODS or (method == "card" and self.draft.card is None):
            raise EnrolmentError(f"method {method} is not available for this customer")
        self.draft.default_method = method

    # -- the one transaction -----------------------------------------------------------
    async def commit(self) -> int:
        """Link everything in one transaction; returns the login user id."""
        d = self.draft
        assert d is not None
        if not d.phone or not d.accounts:
            raise EnrolmentError("an enrolment needs a phone number and at least one account")
        # checked again here: another kiosk may have registered the number meanwhile
        await self.check_phone(d.phone)
        if d.face_consent and d.embeddings:
            self.check_face_consistency()
        name = d.name or (await self.billing.account(d.accounts[0])).holder_name
        user_id = await self.customers.link(
            phone=d.phone,
            name=name,
            accounts=list(d.accounts),
            default_method=d.default_method,
            wallet_no=f"EW{d.phone}",
            card_token=d.card.token if d.card else None,
            card_last4=d.card.last4 if d.card else None,
            issuer=d.card.issuer if d.card else "",
            extra=lambda tx, uid: self._in_transaction(tx, uid, d),
        )
        await audit.record(
            self.db,
            "customer_enrolled",
            d.staff_id,
            user_id=user_id,
            accounts=len(d.accounts),
            face=bool(d.face_consent and d.embeddings),
            card=bool(d.card),
        )
        self.discard()
        return user_id

    async def _in_transaction(self, tx: Any, user_id: int, d: EnrolmentDraft) -> None:
        await tx.execute(
            "INSERT INTO consent(user_id, purpose, granted, staff_id) VALUES (?, 'face', ?, ?)",
            (user_id, 1 if d.face_consent else 0, d.staff_id),
        )
        if d.face_consent and d.embeddings and self.faces is not None:
            await self.faces.enrol_in(tx, user_id, list(d.embeddings))
