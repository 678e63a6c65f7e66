"""``python main.py demo``: whole customer sessions, headless, on real input.

Two elderly customers walk up to a kiosk whose cash units are the SSP simulator on a
real pseudo-terminal, driven by the real pyserial driver:

1. An enrolled customer. The camera sees a *different* photo of her than the one she
   was enrolled from; insightface identifies her; the arrears are spoken (rendered to
   WAV by espeak-ng through pyttsx3); one keypress pays by cash: a 200 元 note for
   123.45 元; change is paid from the real cassette counts down to 角; the 5 分 that
   cannot be paid out is credited to the account and announced; the bill is posted;
   the receipt is printed (ESC/POS bytes) and spoken.
2. A person who is not enrolled. The face is not recognised, so the kiosk asks for the
   account number, which the customer types on the keypad; then pays with a 100 元 note.

The "customer" here is a small script that reacts to what the screen shows, the way
a person would: it presses the big key when the arrears are shown, pushes a note
into the simulator's slot when asked for cash, and takes the receipt. Everything it
touches is the kiosk's real input path. A readable transcript is printed, and the
speech WAVs, receipts, screen images and the transcript are written to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Config
from assistant.kiosk import HeadlessDisplay, Transcript
from assistant.messages import ActionChosen, Key, KeyPressed
from assistant.screens import ScreenModel
from devices.camera import Camera, load_image

log = logging.getLogger(__name__)

STEP_TIMEOUT_S = 60.0


def register(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``demo``."""
    parser.add_argument("--out", default="var/demo", help="folder for the transcript, speech, receipts and screens")
    parser.add_argument("--photo", default="face-images/obama2.jpg",
                        help="photo the camera sees for the enrolled customer (under the data folder)")
    parser.add_argument("--enrol-photo", default="face-images/obama.jpg",
                        help="photo the enrolled customer was enrolled from")
    parser.add_argument("--stranger", default="face-images/biden.jpg", help="photo of a person not enrolled")
    parser.add_argument("--no-screens", action="store_true", help="skip rendering the screens with Kivy")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the demo; the exit code is 0 only when every step happened as expected."""
    logging.getLogger().setLevel(logging.WARNING)
    out = config.resolve(args.out)
    return asyncio.run(demo(config, out, args))


class DemoCamera(Camera):
    """What the kiosk camera sees: nobody, or the photo of the person standing there."""

    name = "demo camera"

    def __init__(self) -> None:
        self._frame: np.ndarray | None = None
        self._empty = np.full((720, 1280, 3), 90, dtype=np.uint8)  # an empty hall

    def walk_up(self, photo: Path) -> None:
        """A person stands in front of the kiosk."""
        self._frame = load_image(photo)

    def walk_away(self) -> None:
        """Nobody in front of the kiosk."""
        self._frame = None

    def read(self) -> np.ndarray:
        return (self._frame if self._frame is not None else self._empty).copy()


@dataclass
class Outcome:
    """What one session ended with."""

    account: str
    screens: list[str]


class Customer:
    """Acts on what the screen shows, through the kiosk's real inputs."""

    def __init__(self, parts: Any, display: HeadlessDisplay, camera: DemoCamera, sim: Any, say: Any) -> None:
        self.parts = parts
        self.kiosk = parts.kiosk
        self.display = display
        self.camera = camera
        self.sim = sim
        self.say = say

    async def see(self, screen: str) -> ScreenModel:
        """Wait for a screen, and for the kiosk to finish speaking (a customer listens)."""
        model = await self.display.wait_for(screen, STEP_TIMEOUT_S)
        await asyncio.wait_for(self.kiosk.quiet(), STEP_TIMEOUT_S)
        return model

    def press(self, key: Key) -> None:
        self.say(f"presses {key.value}")
        self.kiosk.post(KeyPressed(key))

    def touch(self, action: str) -> None:
        self.say(f"touches {action}")
        self.kiosk.post(ActionChosen(action))

    async def insert_note(self, fen: int) -> None:
        self.say(f"inserts a {fen // 100} yuan note")
        taken = await asyncio.to_thread(self.sim.insert_note, fen)
        if not taken:
            raise RuntimeError(f"the note slot refused a {fen // 100} yuan note")

    async def wait_inserted(self, fen: int) -> None:
        """Wait until the screen shows the note as received (credited only once stacked)."""
        async def credited() -> None:
            while self.display.current is None or self.display.current.fields.get("inserted") != _screen_yuan(fen):
                await self.display.wait_for_change(STEP_TIMEOUT_S)
        await asyncio.wait_for(credited(), STEP_TIMEOUT_S)

    async def enrolled_session(self, photo: Path) -> None:
        self.say(f"walks up (camera sees {photo.name})")
        self.camera.walk_up(photo)
        model = await self.see("identified")
        self.say(f"sees arrears {model.fields.get('arrears')} for {model.fields.get('name')}")
        self.press(Key.CONFIRM)
        await self.see("cash")
        # 123.45 元 owed: two 100 元 notes (there is no 200 元 note in RMB).
        await self.insert_note(10000)
        await self.wait_inserted(10000)
        await self.insert_note(10000)
        model = await self.see("result")
        self.say(f"takes change {model.fields.get('change')} and the receipt")
        self.touch("done")
        await self.display.wait_for("welcome", STEP_TIMEOUT_S)
        self.camera.walk_away()

    async def stranger_session(self, photo: Path, account_no: str, note_fen: int) -> None:
        self.say(f"walks up (camera sees {photo.name}, not enrolled)")
        self.camera.walk_up(photo)
        await self.see("account_entry")
        self.say(f"types the account number {account_no}")
        for d in account_no:
            self.kiosk.post(KeyPressed(Key(d)))
        self.press(Key.ENTER)
        await self.see("confirm")
        self.press(Key.CONFIRM)
        model = await self.see("identified")
        self.say(f"sees arrears {model.fields.get('arrears')} for {model.fields.get('name')}")
        self.press(Key.CONFIRM)
        await self.see("cash")
        await self.insert_note(note_fen)
        model = await self.see("result")
        self.say(f"takes change {model.fields.get('change')} and the receipt")
        self.touch("done")
        await self.display.wait_for("welcome", STEP_TIMEOUT_S)
        self.camera.walk_away()


async def demo(config: Config, out: Path, args: argparse.Namespace) -> int:
    """Set up a fresh demo kiosk in ``out``, run both sessions, print and write the results."""
    from assistant.app import build_kiosk
    from assistant.cash_setup import demo_cash
    from assistant.face_cli import demo_consent_staff, enrol_photos, record_consent
    from assistant.models import Layout
    from assistant.seed import seed
    from assistant.storage import Database

    await asyncio.to_thread(_fresh_folder, out)
    data = Layout.from_config(config).data
    # The demo's own database and cash simulator live in the output folder; models come
    # from the provisioned models folder.
    config.data["storage"] = {"path": str(out / "kiosk.db")}
    transcript = Transcript(echo=lambda line: print(line, flush=True))

    def customer_says(text: str) -> None:
        transcript.add("user", text)

    print(f"demo: writing to {out}")
    async with Database(out / "kiosk.db") as db:
        report = await seed(db, data.parent)
    print(f"demo: {report.customers} demo customers with their arrears, {report.staff} staff")

    camera = DemoCamera()
    display = HeadlessDisplay()
    sim, cash_factory = demo_cash(config, out)
    transcript.add("info", f"cash simulator on pseudo-terminal {sim.port_path('notes')}")
    parts = await build_kiosk(
        config, display, voice="wav", out_dir=out, camera=camera, cash=cash_factory, transcript=transcript
    )
    failed = False
    try:
        if parts.face is None:
            raise RuntimeError("face recognition is not available: " + "; ".join(parts.problems))
        row = await parts.db.fetchone("SELECT id FROM login_user WHERE phone = '13800138000'")
        staff = await parts.db.fetchone("SELECT id FROM staff WHERE staff_no = ?", (demo_consent_staff(),))
        await record_consent(parts.db, int(row[0]), int(staff[0]))
        await enrol_photos(parts.face, int(row[0]), [data / args.enrol_photo])
        transcript.add("info", f"enrolled customer {row[0]} from {args.enrol_photo}")
        stop = asyncio.Event()
        loop_task = asyncio.create_task(parts.kiosk.run(stop))
        customer = Customer(parts, display, camera, sim, customer_says)
        await display.wait_for("welcome", STEP_TIMEOUT_S)
        await customer.enrolled_session(data / args.photo)
        await customer.stranger_session(data / args.stranger, "3100023456", 10000)
        stop.set()
        await asyncio.wait_for(loop_task, 10)
    except Exception as exc:  # the demo reports what went wrong instead of a traceback
        failed = True
        print(f"demo: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        summary = await _summary(parts, sim)
        await parts.close()
        sim.stop()
    _write(out, transcript, display, parts, summary)
    if not args.no_screens:
        _render_screens(out, display.shown)
    return 1 if failed else 0


async def _summary(parts: Any, sim: Any) -> dict[str, Any]:
    billing = parts.services.billing
    accounts = {}
    for no in ("3100012345", "3100023456"):
        info = await billing.account(no)
        accounts[no] = {"arrears_fen": info.arrears_fen, "prepaid_fen": info.prepaid_fen}
    postings = [dict(r) for r in await parts.db.fetchall(
        "SELECT reference, account_no, kind, amount_fen, channel FROM billing_posting ORDER BY id")]
    books = {}
    for r in await parts.db.fetchall("SELECT unit, denomination_fen, count FROM cash_unit ORDER BY unit, denomination_fen DESC"):
        books.setdefault(r[0], {})[int(r[1])] = int(r[2])
    return {"accounts": accounts, "postings": postings, "cash_books": books, "simulator": sim.snapshot()}


def _write(out: Path, transcript: Transcript, display: HeadlessDisplay, parts: Any, summary: dict[str, Any]) -> None:
    final = ["", "== Final balances"]
    for no, acc in summary["accounts"].items():
        final.append(f"account {no}: arrears {_yuan(acc['arrears_fen'])}, prepaid {_yuan(acc['prepaid_fen'])}")
    for p in summary["postings"]:
        final.append(f"posting {p['reference']}: {p['kind']} {_yuan(p['amount_fen'])} to {p['account_no']} by {p['channel']}")
    final += ["", "== Cassette counts (kiosk books)"]
    for unit, counts in summary["cash_books"].items():
        final.append(f"{unit}: " + ", ".join(f"{_yuan(d)}×{n}" for d, n in counts.items()))
    print("\n".join(final))
    (out / "transcript.txt").write_text(
        "\n".join([*(f"{ln.kind.upper():<6} {ln.text}" for ln in transcript.lines), *final]) + "\n",
        encoding="utf-8",
    )
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    speech = sorted((out / "speech").glob("*.wav")) if (out / "speech").exists() else []
    total = sum(_wav_seconds(p) for p in speech)
    print("\n== Files")
    print(f"{out / 'transcript.txt'}")
    print(f"{out / 'speech'}: {len(speech)} WAVs, {total:.1f} s of speech (index.tsv: the words in each)")
    receipts = sorted((out / "receipts").glob("*.txt")) if (out / "receipts").exists() else []
    print(f"{out / 'receipts'}: {len(receipts)} receipts (ESC/POS .bin and text)")


def _render_screens(out: Path, shown: list[ScreenModel]) -> None:
    """Draw each distinct screen with the real Kivy window (needs a display, e.g. Xvfb)."""
    import os
    import subprocess
    import tempfile

    seen: dict[str, ScreenModel] = {}
    for model in shown:
        seen.setdefault(f"{model.screen}-{model.pack}", model)
    folder = out / "screens"
    folder.mkdir(exist_ok=True)
    if not os.environ.get("DISPLAY"):
        print(f"{folder}: not rendered (no display; run under xvfb-run)")
        return
    from ui.render import dump_models

    with tempfile.TemporaryDirectory(prefix="kiosk-screens-") as tmp:
        spec = Path(tmp) / "models.json"
        dump_models(list(seen.values()), spec)
        proc = subprocess.run([sys.executable, "-m", "ui.render", str(spec), str(folder)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{folder}: screen rendering failed: {proc.stderr.strip().splitlines()[-1:]}")
        return
    print(f"{folder}: {len(list(folder.glob('*.png')))} screen images")


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def _fresh_folder(out: Path) -> None:
    """An empty output folder (a previous demo's files are removed)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _screen_yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d} yuan"
