"""Receipt printer: ESC/POS through python-escpos (serial in the hall, a Dummy in tests/demo).

Chinese thermal printers take GB18030 text after ``FS &`` (Chinese character mode);
python-escpos's code-page encoder has no CJK tables, so text lines are encoded here
and sent raw, while cutting, alignment and sizes use the library's commands.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass

from assistant.errors import DeviceError, MissingPackageError

FS_CHINESE_ON = b"\x1c\x26"
FS_CHINESE_OFF = b"\x1c\x2e"


@dataclass(frozen=True)
class PrinterConfig:
    """The ``[printer]`` config section."""

    backend: str = "dummy"
    """``dummy`` (records bytes) or ``serial``."""
    port: str = "/dev/ttyS1"
    """Serial port of the printer."""
    baudrate: int = 9600
    """Serial speed."""
    timeout_s: float = 5.0
    """How long a print may take before it is reported as a fault."""


class ReceiptPrinter(abc.ABC):
    """Prints receipts made of text lines."""

    @abc.abstractmethod
    async def print_lines(self, title: str, lines: list[tuple[str, str]], footer: str = "") -> bytes:
        """Print a receipt: a title, (label, value) lines and a footer; returns the bytes sent."""


class EscposPrinter(ReceiptPrinter):
    """ESC/POS printer via python-escpos.

    Args:
        config: the printer section.
    """

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        try:
            from escpos import printer as escpos_printer
        except ImportError:
            raise MissingPackageError("escpos", "all") from None
        if config.backend == "dummy":
            self._device = escpos_printer.Dummy()
        elif config.backend == "serial":
            self._device = escpos_printer.Serial(devfile=config.port, baudrate=config.baudrate)
        else:
            raise DeviceError(f"[printer] backend must be 'dummy' or 'serial', not {config.backend!r}")
        self.printed: list[bytes] = []

    async def print_lines(self, title: str, lines: list[tuple[str, str]], footer: str = "") -> bytes:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._print, title, lines, footer), self.config.timeout_s
            )
        except TimeoutError:
            raise DeviceError("receipt printer did not answer") from None
        except OSError as exc:
            raise DeviceError(f"receipt printer failed: {exc}") from None

    def _text(self, text: str) -> None:
        self._device._raw(FS_CHINESE_ON + text.encode("gb18030") + FS_CHINESE_OFF)

    def _print(self, title: str, lines: list[tuple[str, str]], footer: str) -> bytes:
        d = self._device
        start = len(d.output) if hasattr(d, "output") else 0
        d.set(align="center", double_height=True, double_width=True)
        self._text(title + "\n")
        d.set(align="left", normal_textsize=True)
        self._text("-" * 32 + "\n")
        for label, value in lines:
            self._text(f"{label}: {value}\n")
        if footer:
            self._text("-" * 32 + "\n")
            self._text(footer + "\n")
        d.cut()
        data = bytes(d.output[start:]) if hasattr(d, "output") else b""
        self.printed.append(data)
        return data


def decode_text(data: bytes) -> str:
    """The readable text inside ESC/POS bytes made by :class:`EscposPrinter` (for tests)."""
    parts = []
    for chunk in data.split(FS_CHINESE_ON)[1:]:
        parts.append(chunk.split(FS_CHINESE_OFF, 1)[0].decode("gb18030"))
    return "".join(parts)
