"""Draw ScreenModels to PNG files with the real window: ``python -m ui.render MODELS.json OUT_DIR``.

The headless demo records every screen it showed; it writes them with
:func:`dump_models` and runs this module in a fresh process (Kivy opens one window
per process) to get one picture per screen, exactly as the kiosk would draw it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from assistant.screens import Action, Button, Screen, ScreenModel


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def model_to_dict(model: ScreenModel) -> dict[str, Any]:
    """A ScreenModel as plain JSON data."""
    return {
        "screen": model.screen.value,
        "title": model.title,
        "fields": dict(model.fields),
        "labels": dict(model.labels),
        "buttons": [
            {"action": b.action.value, "label": b.label, "primary": b.primary, "value": b.value, "current": b.current}
            for b in model.buttons
        ],
        "caption": model.caption,
        "pack": model.pack,
        "text_scale": model.text_scale,
        "extra": _plain(model.extra),
    }


def model_from_dict(data: Mapping[str, Any]) -> ScreenModel:
    """The inverse of :func:`model_to_dict`."""
    return ScreenModel(
        screen=Screen(data["screen"]),
        title=data.get("title", ""),
        fields=MappingProxyType(dict(data.get("fields", {}))),
        labels=MappingProxyType(dict(data.get("labels", {}))),
        buttons=tuple(
            Button(Action(b["action"]), b["label"], bool(b.get("primary")), b.get("value", ""), bool(b.get("current")))
            for b in data.get("buttons", ())
        ),
        caption=data.get("caption", ""),
        pack=data.get("pack", "zh-CN"),
        text_scale=float(data.get("text_scale", 1.0)),
        extra=_frozen(dict(data.get("extra", {}))),
    )


def dump_models(models: Sequence[ScreenModel], path: Path) -> None:
    """Write ``models`` to a JSON file for :func:`main`."""
    path.write_text(json.dumps([model_to_dict(m) for m in models], ensure_ascii=False, indent=1), encoding="utf-8")


def render(models: Sequence[ScreenModel], out: Path) -> list[Path]:
    """Draw each model in the window and save ``NN-screen-pack.png`` files into ``out``."""
    from assistant.config import Config
    from ui.audit import Renderer

    renderer = Renderer(Config.load())
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, model in enumerate(models):
        renderer.render(model)
        png = out / f"{i:02d}-{model.screen.value}-{model.pack}.png"
        renderer.host.export_to_png(str(png))
        written.append(png)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ui.render MODELS.json OUT_DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m ui.render MODELS.json OUT_DIR", file=sys.stderr)
        return 2
    data = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    written = render([model_from_dict(d) for d in data], Path(args[1]))
    print(f"{len(written)} screens drawn into {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
