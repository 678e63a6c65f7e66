"""The kiosk's exception hierarchy.

Every subsystem raises its own subclass of :class:`KioskError`. Each class names the
prompt id (in the locale pack) that the dialog speaks and shows when it reaches the
customer, so an error is never a traceback on the screen.
"""

from __future__ import annotations


class KioskError(Exception):
    """Base of every error the kiosk expects and handles."""

    prompt_id: str = "error_generic"
    """Prompt spoken and shown to the customer when this error reaches the dialog."""


class ConfigError(KioskError):
    """The configuration file is missing, malformed or has unknown keys."""

    prompt_id = "error_out_of_service"


class StorageError(KioskError):
    """The database cannot be opened, is corrupt, or a write failed."""

    prompt_id = "error_out_of_service"


class ModelError(KioskError):
    """A model is missing, corrupt, or its package is not installed."""

    prompt_id = "error_out_of_service"


class MissingPackageError(ModelError):
    """An optional Python package for a chosen backend is not installed.

    Args:
        package: the import name that failed.
        extra: the ``pip install`` extra that provides it.
    """

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"the optional package '{package}' is not installed; "
            f"install it with: .venv/bin/pip install -e '.[{extra}]'"
        )
        self.package = package
        self.extra = extra


class LocaleError(KioskError):
    """A locale pack is invalid (the message names the file and line)."""


class SpeechError(KioskError):
    """Speech recognition or synthesis failed."""

    prompt_id = "error_speech"


class DeviceError(KioskError):
    """A device (cash unit, camera, printer, keypad) failed or does not answer."""

    prompt_id = "error_device"


class CashDeviceError(DeviceError):
    """A cash unit failed; the dialog calls staff with the exact state."""

    prompt_id = "cash_fault"


class FaceError(DeviceError):
    """Face processing failed (camera, model)."""

    prompt_id = "face_failed"


class BillingError(KioskError):
    """The billing backend failed or refused a posting."""

    prompt_id = "error_billing"


class UnknownAccount(BillingError):
    """No electricity account with that number."""

    prompt_id = "account_not_found"


class PaymentError(KioskError):
    """A payment could not be completed."""

    prompt_id = "payment_failed"


class CashDeviceNotResponding(CashDeviceError):
    """A cash unit does not answer on its port (or the port cannot be opened).

    Cash payment is unavailable until staff fix it; other payment methods still work.
    """

    # a dedicated "cash payment unavailable, pay another way" prompt is proposed to the
    # locale packs (cash_unavailable); until it exists the generic device fault is said
    prompt_id = "cash_unavailable"


class CashPortLost(CashDeviceNotResponding):
    """The serial port of a cash unit disappeared while in use (cable, USB, power)."""


class CashPayoutRefused(CashDeviceError):
    """A unit refused a payout (not enough value, cannot pay exact, busy, disabled).

    Args:
        message: what was asked and why it was refused.
        reason: the unit's refusal code name, e.g. ``CANNOT_PAY_EXACT``.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class CashSimulatorBusy(CashDeviceError):
    """Another process (a running kiosk) already runs the cash simulator on the same state file.

    A second simulator would replace the first one's port link and control socket and
    overwrite its cassette counts, so it refuses to start instead.
    """

    prompt_id = "cash_unavailable"


class CashStateMismatch(CashDeviceError):
    """A database and cash units (or simulator files) that do not belong to the same kiosk.

    Comparing one kiosk's books with another kiosk's cassettes shows differences that are
    not there, and an exchange would change the other kiosk's cash; such a pair is refused.
    """


class CashUnitLocked(CashDeviceError):
    """A cash unit is locked for a cassette exchange; cash payment waits for the bank staff."""

    prompt_id = "cash_unavailable"


class CashPaymentBusy(PaymentError):
    """Another cash payment is still open on this kiosk."""

    prompt_id = "cash_fault"


class CassetteError(CashDeviceError):
    """A cassette exchange was refused (dual control not met, no exchange open, bad counts)."""

    prompt_id = "cassette_refused"


class SpokenNumberError(KioskError):
    """Spoken or typed text could not be turned into a number (amount or digit string)."""

    prompt_id = "not_understood"


class AmbiguousAmount(SpokenNumberError):
    """The customer gave an approximate amount ("two or three yuan"); ask again, never guess."""

    prompt_id = "amount_ambiguous"


class NotAnAmount(SpokenNumberError):
    """The text is not an amount of money at all."""

    prompt_id = "amount_not_understood"


class NotDigits(SpokenNumberError):
    """The text is not a string of digits (account, phone or card number)."""

    prompt_id = "digits_not_understood"
