"""Kiosk configuration: one TOML file, read once at start-up.

Each subsystem declares its own section as a dataclass and reads it with
:meth:`Config.section`. Unknown keys and wrong types are errors that name the
file and the key, so a typo in a kiosk's config never passes silently.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from assistant.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "kiosk.toml"

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class KioskSection:
    """Identity of this kiosk and where it keeps its files."""

    id: str = "K001"
    """Kiosk id, printed on receipts and used in reports."""
    hall: str = "demo-hall"
    """Service hall id this kiosk belongs to."""
    hall_phone: str = ""
    """Contact number shown to customers while no staff are present."""
    data_dir: str = "var"
    """Folder for the database, models and outputs (relative to the project root)."""
    locale: str = "zh-CN"
    """Default locale pack; customers can switch explicitly."""
    locales_dir: str = "locales"
    """Folder holding the locale packs."""


@dataclasses.dataclass(frozen=True)
class UiSection:
    """Screen settings."""

    font: str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
    """The CJK font file every screen uses (also checked by ``locales check``)."""
    fullscreen: bool = False
    """Kiosk mode: fullscreen, no cursor, no decorations."""
    width: int = 1280
    """Window width in pixels when not fullscreen."""
    height: int = 800
    """Window height in pixels when not fullscreen."""


# Every section of the config file and the dataclass that reads it ("module:Class").
# :meth:`Config.check` builds them all at start-up, so a typo anywhere in the file is
# reported before the kiosk starts, not when that part is first used.
SECTIONS: dict[str, str] = {
    "kiosk": "assistant.config:KioskSection",
    "ui": "assistant.config:UiSection",
    "storage": "assistant.storage:StorageSection",
    "dialog": "assistant.dialog:DialogConfig",
    "payments": "assistant.payments:SandboxConfig",
    "printer": "devices.printer:PrinterConfig",
    "models": "assistant.models:ModelsSection",
    "face": "assistant.identity:FaceSection",
    "ocr": "devices.card_ocr:OcrSection",
    "cash": "devices.cash:CashConfig",
    "audio": "speech.audio:AudioSection",
    "asr": "speech.asr:AsrSection",
    "tts": "speech.tts:TtsSection",
    "backoffice": "assistant.backoffice:BackofficeSection",
    "alerts": "assistant.alerts:AlertsSection",
}


class Config:
    """The parsed configuration file.

    Args:
        data: the TOML document as a dict.
        path: where it was read from (used in error messages and to resolve paths).
    """

    def __init__(self, data: dict[str, Any], path: Path | None = None) -> None:
        self.data = data
        self.path = path
        self.kiosk = self.section("kiosk", KioskSection)
        self.ui = self.section("ui", UiSection)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Config:
        """Read a config file (the default one when ``path`` is None).

        ``KIOSK_DATA_DIR`` in the environment overrides ``[kiosk] data_dir`` so a test
        run or a second kiosk on one machine can use its own folder.
        """
        p = Path(path) if path else DEFAULT_CONFIG
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        env_dir = os.environ.get("KIOSK_DATA_DIR")
        if env_dir:
            data.setdefault("kiosk", {})["data_dir"] = env_dir
        return cls(data, p)

    @classmethod
    def default(cls, **overrides: dict[str, Any]) -> Config:
        """The default config with some sections replaced or extended (for tests)."""
        cfg = cls.load()
        for name, values in overrides.items():
            cfg.data.setdefault(name, {}).update(values)
        cfg.kiosk = cfg.section("kiosk", KioskSection)
        return cfg

    def check(self) -> None:
        """Read every known section, and refuse unknown ones (errors name the file and key)."""
        import importlib

        unknown = sorted(set(self.data) - set(SECTIONS))
        if unknown:
            raise ConfigError(
                f"{self.path or '<config>'}: unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; "
                f"known sections: {', '.join(SECTIONS)}"
            )
        for name, target in SECTIONS.items():
            module, _, cls = target.partition(":")
            self.section(name, getattr(importlib.import_module(module), cls))

    def section(self, name: str, schema: type[T]) -> T:
        """Build the dataclass ``schema`` from the ``[name]`` table (dots for sub-tables)."""
        table: Any = self.data
        for part in name.split("."):
            table = table.get(part, {}) if isinstance(table, dict) else {}
        where = str(self.path or "<config>")
        try:
            return _build(schema, table, f"{where} [{name}]")
        except ConfigError as exc:
            # a section's own range checks (``__post_init__``) know the key, not the file
            msg = str(exc)
            if msg.startswith(where):
                raise
            raise ConfigError(f"{where}: {msg}") from None

    # -- paths ---------------------------------------------------------------------------
    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A path from the config, relative to the project root unless absolute."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else ROOT / p

    @property
    def data_dir(self) -> Path:
        """The kiosk's data folder (created on demand)."""
        d = self.resolve(self.kiosk.data_dir)
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def locales_dir(self) -> Path:
        """The folder with the locale packs."""
        return self.resolve(self.kiosk.locales_dir)


def _build(schema: type[T], table: dict[str, Any], where: str) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(schema)
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(fields))}"
        )
    values: dict[str, Any] = {}
    for key, raw in table.items():
        values[key] = _coerce(hints[key], raw, f"{where} {key}")
    return schema(**values)


def _coerce(hint: Any, raw: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, raw, where)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            if a is type(None) and raw is None:
                return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(non_none[0], raw, where)
    if origin in (tuple, list):
        if not isinstance(raw, list):
            raise ConfigError(f"{where}: expected a list, got {raw!r}")
        inner = args[0] if args else Any
        items = [_coerce(inner, x, where) for x in raw]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table, got {raw!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(kt, k, where): _coerce(vt, v, where) for k, v in raw.items()}
    if hint is Any:
        return raw
    if hint is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(hint, type):
        if hint is int and isinstance(raw, bool):
            raise ConfigError(f"{where}: expected an integer, got {raw!r}")
        if not isinstance(raw, hint):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {raw!r}")
        return raw
    return raw
