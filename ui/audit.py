"""``python main.py ui audit``: render every screen and measure it against DESIGN §10.

Every sample screen (every screen, every variant, realistic data) is drawn in a
real Kivy window with the real font, at each text scale asked for (by default the
normal one and the largest). From the widget tree it measures:

- every touch target's width and height (dp; at least 60);
- every text's size (dp; at least 18) and its contrast against the background it
  sits on (at least 7:1), the background taken from the tree and checked against
  the pixels actually drawn;
- that every character is in the font's character map;
- that nothing is clipped (text larger than its widget, a widget outside the
  window or outside its parent) and that no two texts or targets overlap;
- that the screen's first text or button keeps clear of the title bar (at least
  20 dp below it).

It saves a screenshot per screen and scale, prints a table, and exits non-zero on
any breach. Without a display it re-runs itself under ``xvfb-run``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import string
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.config import ROOT, Config
from assistant.kiosk import PackSource
from assistant.screens import ScreenModel
from ui.boot import display_available, prepare
from ui.samples import Sample, build_samples, default_packs, present
from ui.theme import (
    MAX_TEXT_SCALE,
    MIN_CONTRAST,
    MIN_HEADER_GAP_DP,
    MIN_TARGET_DP,
    MIN_TEXT_DP,
    PALETTE,
    RGBA,
    contrast_ratio,
)

XVFB_GUARD = "KIOSK_UI_AUDIT_XVFB"
TOLERANCE_PX = 1.0
BG_TOLERANCE = 10 / 255
"""How far a drawn background pixel may be from the declared colour (anti-aliasing, dithering)."""


# ----------------------------------------------------------------------------- measurements


@dataclass
class Breach:
    """One failure of the bar."""

    kind: str
    """target, text, contrast, glyph, clipped, overlap, background, spacing."""
    where: str
    """Which widget (its text, or its action for a button)."""
    detail: str


@dataclass
class ScreenAudit:
    """The measurements of one screen at one text scale."""

    name: str
    scale: float
    targets: int = 0
    min_target_dp: float = float("inf")
    texts: int = 0
    min_text_dp: float = float("inf")
    min_contrast: float = float("inf")
    header_gap_dp: float = float("inf")
    """Space between the title bar and the highest text or target below it."""
    glyphs_missing: set[str] = field(default_factory=set)
    breaches: list[Breach] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        """True when nothing breached the bar."""
        return not self.breaches

    def count(self, kind: str) -> int:
        """Breaches of one kind."""
        return sum(1 for b in self.breaches if b.kind == kind)


@lru_cache(maxsize=4)
def font_cmap(font: str) -> frozenset[int]:
    """Code points the font renders (the first face of a collection: the one Kivy uses)."""
    from fontTools.ttLib import TTCollection, TTFont

    face = TTCollection(font).fonts[0] if font.lower().endswith((".ttc", ".otc")) else TTFont(font)
    return frozenset(face.getBestCmap())


def _describe(widget: Any) -> str:
    text = getattr(widget, "text", "") or getattr(widget, "action", "") or type(widget).__name__
    text = text.replace("\n", " ")
    return f"{type(widget).__name__}({text[:24]!r})"


def _visible(widget: Any) -> bool:
    return widget.opacity > 0 and widget.width > 0 and widget.height > 0


def _walk_visible(root: Any) -> Iterable[Any]:
    stack = [root]
    while stack:
        w = stack.pop()
        if not _visible(w):
            continue
        yield w
        stack.extend(w.children)


def _background(widget: Any) -> RGBA:
    w = widget
    while w is not None:
        colour = getattr(w, "bg_color", None)
        if colour is not None and len(colour) == 4 and colour[3] >= 0.999:
            return tuple(colour)  # type: ignore[return-value]
        parent = w.parent
        w = parent if parent is not w else None
    return PALETTE.page


def _box(widget: Any) -> tuple[float, float, float, float]:
    x, y = widget.to_window(widget.x, widget.y)
    return x, y, x + widget.width, y + widget.height


def _inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    t = TOLERANCE_PX
    return inner[0] >= outer[0] - t and inner[1] >= outer[1] - t and inner[2] <= outer[2] + t and inner[3] <= outer[3] + t


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    t = TOLERANCE_PX
    return min(a[2], b[2]) - max(a[0], b[0]) > t and min(a[3], b[3]) - max(a[1], b[1]) > t


def _ancestors(widget: Any) -> list[Any]:
    out = []
    w = widget.parent
    while w is not None and w is not w.parent:
        out.append(w)
        w = w.parent
    return out


def measure(root: Any, window_size: tuple[float, float], cmap: frozenset[int], audit: ScreenAudit) -> list[Any]:
    """Measure the widget tree under ``root`` into ``audit``; returns the text widgets."""
    from kivy.metrics import Metrics
    from kivy.uix.behaviors import ButtonBehavior
    from kivy.uix.label import Label

    density = Metrics.density
    window = (0.0, 0.0, float(window_size[0]), float(window_size[1]))
    elements: list[tuple[Any, tuple[float, float, float, float]]] = []
    texts: list[Any] = []
    for w in _walk_visible(root):
        is_target = isinstance(w, ButtonBehavior) and not w.disabled
        is_text = isinstance(w, Label) and bool(w.text.strip())
        if not (is_target or is_text):
            continue
        box = _box(w)
        elements.append((w, box))
        if not _inside(box, window):
            audit.breaches.append(Breach("clipped", _describe(w), f"outside the window: {_fmt_box(box)}"))
        for parent in _ancestors(w):
            if _visible(parent) and parent is not root and not _inside(box, _box(parent)):
                audit.breaches.append(
                    Breach("clipped", _describe(w), f"outside its {type(parent).__name__}: {_fmt_box(box)}")
                )
                break
        if is_target:
            audit.targets += 1
            wd, hd = w.width / density, w.height / density
            audit.min_target_dp = min(audit.min_target_dp, wd, hd)
            if wd < MIN_TARGET_DP or hd < MIN_TARGET_DP:
                audit.breaches.append(Breach("target", _describe(w), f"{wd:.0f}x{hd:.0f} dp"))
        if is_text:
            texts.append(w)
            audit.texts += 1
            size_dp = w.font_size / density
            audit.min_text_dp = min(audit.min_text_dp, size_dp)
            if size_dp < MIN_TEXT_DP:
                audit.breaches.append(Breach("text", _describe(w), f"{size_dp:.1f} dp"))
            ratio = contrast_ratio(tuple(w.color), _background(w))  # type: ignore[arg-type]
            audit.min_contrast = min(audit.min_contrast, ratio)
            if ratio < MIN_CONTRAST:
                audit.breaches.append(Breach("contrast", _describe(w), f"{ratio:.2f}:1"))
            missing = {c for c in w.text if c not in string.whitespace and ord(c) not in cmap}
            if missing:
                audit.glyphs_missing |= missing
                audit.breaches.append(Breach("glyph", _describe(w), "no glyph for " + "".join(sorted(missing))))
            tw, th = w.texture_size
            if tw > w.width + TOLERANCE_PX or th > w.height + TOLERANCE_PX:
                audit.breaches.append(
                    Breach("clipped", _describe(w), f"text {tw:.0f}x{th:.0f} px in {w.width:.0f}x{w.height:.0f} px")
                )
    for i, (a, abox) in enumerate(elements):
        a_up = set(map(id, _ancestors(a)))
        for b, bbox in elements[i + 1 :]:
            if id(b) in a_up or id(a) in set(map(id, _ancestors(b))):
                continue
            if _overlap(abox, bbox):
                audit.breaches.append(Breach("overlap", _describe(a), f"overlaps {_describe(b)}"))
    if audit.min_target_dp == float("inf"):
        audit.min_target_dp = 0.0
    return texts


def check_header_gap(bar: Any, content: Any, audit: ScreenAudit) -> float:
    """Measure the space (dp) between the title ``bar`` and the highest text or target in
    ``content`` into ``audit``; a breach when it is under MIN_HEADER_GAP_DP."""
    from kivy.metrics import Metrics
    from kivy.uix.behaviors import ButtonBehavior
    from kivy.uix.label import Label

    bar_bottom = _box(bar)[1]
    highest = None
    for w in _walk_visible(content):
        is_target = isinstance(w, ButtonBehavior) and not w.disabled
        is_text = isinstance(w, Label) and bool(w.text.strip())
        if (is_target or is_text) and (highest is None or _box(w)[3] > _box(highest)[3]):
            highest = w
    if highest is None:
        return audit.header_gap_dp
    gap = (bar_bottom - _box(highest)[3]) / Metrics.density
    audit.header_gap_dp = gap
    if gap < MIN_HEADER_GAP_DP - TOLERANCE_PX:
        audit.breaches.append(Breach("spacing", _describe(highest), f"{gap:.0f} dp below the title bar"))
    return gap


def _fmt_box(box: tuple[float, ...]) -> str:
    return "({:.0f},{:.0f})-({:.0f},{:.0f})".format(*box)


def check_backgrounds(png: Path, texts: Sequence[Any], height: float, audit: ScreenAudit) -> None:
    """Compare each text's declared background with the colour most drawn in its box."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    for w in texts:
        x0, y0, x1, y1 = _box(w)
        # Kivy's y grows upwards, the image's downwards.
        crop = image.crop((int(x0), int(height - y1), int(x1), int(height - y0)))
        if crop.width < 2 or crop.height < 2:
            continue
        colours = Counter(crop.getdata())
        drawn = colours.most_common(1)[0][0]
        declared = _background(w)
        if any(abs(d / 255 - c) > BG_TOLERANCE for d, c in zip(drawn, declared[:3], strict=False)):
            audit.breaches.append(
                Breach(
                    "background",
                    _describe(w),
                    "drawn #{:02X}{:02X}{:02X} where #{:02X}{:02X}{:02X} was declared".format(
                        *drawn, *(round(c * 255) for c in declared[:3])
                    ),
                )
            )


# ----------------------------------------------------------------------------- rendering


class Renderer:
    """A window with the screen host in it, drawn synchronously (no event loop needed)."""

    def __init__(self, config: Config) -> None:
        prepare(config.ui, kiosk_mode=False)
        from kivy.base import EventLoop
        from kivy.core.window import Window

        from ui.display import KivyDisplay

        EventLoop.ensure_window()
        self.window = Window
        Window.clearcolor = PALETTE.page
        self.display = KivyDisplay()
        self.host = self.display.build()
        Window.add_widget(self.host)
        self.font = config.ui.font

    def render(self, model: ScreenModel) -> None:
        """Draw ``model`` (as if it had just arrived) and let the layout settle."""
        self.display._apply(model, fresh=True)
        self.settle()

    def settle(self, max_frames: int = 40) -> int:
        """Run frames until no widget moves; returns the number of frames run."""
        from kivy.base import EventLoop

        last = None
        for frame in range(max_frames):
            EventLoop.idle()
            sig = tuple(
                (round(w.x), round(w.y), round(w.width), round(w.height)) for w in self.host.walk(restrict=True)
            )
            if sig == last:
                return frame + 1
            last = sig
        return max_frames

    def audit(self, name: str, model: ScreenModel, out: Path | None) -> ScreenAudit:
        """Draw and measure one screen; save its screenshot into ``out``."""
        self.render(model)
        result = ScreenAudit(name, model.text_scale)
        texts = measure(self.host, self.window.size, font_cmap(self.font), result)
        check_header_gap(self.host.ids.top, self.host.ids.content, result)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            png = out / f"{name}@{model.text_scale:g}.png"
            self.host.export_to_png(str(png))
            result.screenshot = png
            check_backgrounds(png, texts, self.host.height, result)
        return result


def audit_all(
    config: Config,
    samples: Sequence[Sample],
    packs: PackSource,
    pack_ids: tuple[str, ...],
    scales: Sequence[float] = (1.0, MAX_TEXT_SCALE),
    out: Path | None = None,
    renderer: Renderer | None = None,
) -> list[ScreenAudit]:
    """Audit every sample at every scale."""
    renderer = renderer or Renderer(config)
    results = []
    for scale in scales:
        for sample in samples:
            model = present(sample, packs, pack_ids, text_scale=scale)
            results.append(renderer.audit(sample.name, model, out))
    return results


def table(results: Sequence[ScreenAudit]) -> str:
    """The audit as a plain-text table (one line per screen and scale), breaches listed after."""
    head = (
        f"{'screen':<24} {'scale':>5} {'targets':>7} {'min dp':>6} {'texts':>5} {'min dp':>6} "
        f"{'contrast':>8} {'glyphs':>6} {'clip':>4} {'overlap':>7} {'bg':>3} {'gap':>4}  result"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<24} {r.scale:>5.2f} {r.targets:>7} {r.min_target_dp:>6.0f} {r.texts:>5} "
            f"{r.min_text_dp:>6.1f} {r.min_contrast:>7.1f}:1 {len(r.glyphs_missing):>6} "
            f"{r.count('clipped'):>4} {r.count('overlap'):>7} {r.count('background'):>3} {r.header_gap_dp:>4.0f}  "
            f"{'ok' if r.ok else 'FAIL'}"
        )
    failed = [r for r in results if not r.ok]
    lines.append("-" * len(head))
    lines.append(
        f"{len(results)} screens audited (targets >= {MIN_TARGET_DP:g} dp, text >= {MIN_TEXT_DP:g} dp, "
        f"contrast >= {MIN_CONTRAST:g}:1, gap below the title bar >= {MIN_HEADER_GAP_DP:g} dp): {len(failed)} failed"
    )
    for r in failed:
        for b in r.breaches:
            lines.append(f"  {r.name}@{r.scale:g} {b.kind}: {b.where} {b.detail}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``ui audit``."""
    sub = parser.add_subparsers(dest="action", required=True)
    audit = sub.add_parser("audit", help="render every screen and check the accessibility bar")
    audit.add_argument("--out", default="var/ui-audit", help="folder for the screenshots (default: var/ui-audit)")
    audit.add_argument(
        "--scale",
        type=float,
        action="append",
        help=f"text scale to check (repeatable; default: 1.0 and {MAX_TEXT_SCALE})",
    )
    audit.add_argument("--only", action="append", help="audit only this sample (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the audit; 0 when every screen meets the bar, 1 otherwise."""
    if not display_available():
        return _rerun_under_xvfb(config)
    packs, pack_ids = default_packs(config)
    samples = build_samples(config.kiosk.hall_phone or "95598", pack_ids)
    if args.only:
        samples = [s for s in samples if s.name in set(args.only)]
        if not samples:
            print("ui audit: no sample matches --only", file=sys.stderr)
            return 2
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    for old in out.glob("*@*.png"):  # screenshots of an earlier run (screens may have been renamed)
        old.unlink()
    results = audit_all(config, samples, packs, pack_ids, tuple(args.scale or (1.0, MAX_TEXT_SCALE)), out)
    print(table(results))
    print(f"screenshots: {out}")
    return 0 if all(r.ok for r in results) else 1


def _rerun_under_xvfb(config: Config) -> int:
    xvfb = shutil.which("xvfb-run")
    if xvfb is None or os.environ.get(XVFB_GUARD):
        print("ui audit: no display; run under xvfb-run (apt-get install xvfb)", file=sys.stderr)
        return 2
    os.environ[XVFB_GUARD] = "1"
    screen = f"-screen 0 {config.ui.width}x{config.ui.height}x24"
    os.execv(xvfb, [xvfb, "-a", "-s", screen, sys.executable, *sys.argv])
    return 2  # not reached
