"""Builds the whole kiosk from the config: storage, packs, engines, devices, dialog, runtime.

Everything optional degrades instead of failing: no face model means the account
number path only; no recogniser or microphone means keypad only (and the kiosk says
so); no loudspeaker means captions only. Each problem is kept in
:attr:`KioskParts.problems` for the log, the demo transcript and the staff screen.
The same builder serves the window (``make run``), the headless demo and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.adapters import GrammarListener, ReceiptDevice, SilentVoice, SpeakerVoice, WavVoice
from assistant.backoffice import hall_zone
from assistant.billing import LedgerBilling
from assistant.config import Config
from assistant.customers import CustomerDirectory
from assistant.dialog import Dialog, DialogConfig, DialogServices
from assistant.enrolment import Enrolments
from assistant.errors import KioskError
from assistant.kiosk import Display, Kiosk, Transcript, Voice
from assistant.locale import LocaleRegistry, install_reload_signal, pid_file, pid_record
from assistant.messages import PacksReloaded
from assistant.nlu import PackUnderstanding
from assistant.noncash import NonCashPayments
from assistant.payments import SandboxConfig, SandboxGateway, SandboxTokenizer
from assistant.prompts import Prompt
from assistant.staff import StaffDirectory
from assistant.storage import Database, database_path
from devices.printer import EscposPrinter, PrinterConfig

log = logging.getLogger(__name__)


@dataclass
class KioskParts:
    """The running kiosk and everything it was built from (closed by :meth:`close`)."""

    config: Config
    db: Database
    packs: LocaleRegistry
    kiosk: Kiosk
    dialog: Dialog
    services: DialogServices
    speech: Any = None
    """``speech.voice.Voice`` (gate, speaker, listener) or None."""
    camera: Any = None
    face: Any = None
    """``assistant.identity.FaceIdentifier`` or None."""
    cash: Any = None
    """The cash payment service, when cash is configured."""
    receipts: ReceiptDevice | None = None
    problems: list[str] = field(default_factory=list)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop devices and engines and close the database (reverse order of opening)."""
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                result = closer()
                if hasattr(result, "__await__"):
                    await result
        await self.db.close()


async def build_kiosk(
    config: Config,
    display: Display,
    *,
    voice: str = "speaker",
    out_dir: Path | None = None,
    camera: Any = None,
    cash: Any = None,
    mic: Any = None,
    transcript: Transcript | None = None,
    write_pid: bool = False,
) -> KioskParts:
    """Build every part of the kiosk.

    Args:
        config: the kiosk config.
        display: the window or a headless recorder.
        voice: ``speaker`` (loudspeaker), ``wav`` (render each prompt to ``out_dir/speech``)
            or ``silent`` (captions only).
        out_dir: where the demo keeps speech, receipts (None: nothing kept).
        camera: a camera object to use instead of ``[face] camera``.
        cash: a factory ``(db, billing, on_event, on_device) -> CashSide`` to use instead of
            ``[cash]`` (the demo's own simulator), or False for a kiosk without cash.
        mic: an audio input to use instead of ``[audio] input``.
        transcript: the session record (one is made when None).
        write_pid: write ``var/run/kiosk.pid`` and reload the packs on SIGHUP.
    """
    problems: list[str] = []
    closers: list[Callable[[], Any]] = []
    db = await Database(database_path(config)).open()
    try:
        packs = LocaleRegistry.from_config(config).load()
        understanding = PackUnderstanding(packs)
        billing = LedgerBilling(db)
        customers = CustomerDirectory(db)
        kiosk_id = config.kiosk.id

        payments = config.section("payments", SandboxConfig)
        card_gw = SandboxGateway(db, "card", payments)
        wallet_gw = SandboxGateway(db, "ewallet", payments)
        await card_gw.ensure_schema()
        tokenizer = SandboxTokenizer(db)
        noncash = NonCashPayments(db, billing, {"card": card_gw, "ewallet": wallet_gw}, kiosk_id, payments.timeout_s)
        for r in await noncash.recover():
            log.warning("recovered non-cash payment %s: %s", r.payment_id, r.result)

        face = await _open_face(config, db, problems)
        cam = camera if camera is not None else _open_camera(config, problems)
        if cam is not None:
            closers.append(cam.close)
        card_reader = _open_card_reader(config, problems)

        faces = None
        if face is not None:
            from assistant.identity import GalleryEnroller

            faces = GalleryEnroller(face.gallery, duplicate_threshold=face.threshold)
        enrolments = Enrolments(db, billing, customers, faces, tokenizer)

        dialog_config = config.section("dialog", DialogConfig)
        services = DialogServices(
            billing=billing,
            customers=customers,
            understanding=understanding,
            staff=StaffDirectory(db),
            enrolments=enrolments,
            cash=cash,
            noncash=noncash,
            packs=offered_packs(packs),
            hall_phone=config.kiosk.hall_phone,
        )
        dialog = Dialog(services, dialog_config)

        kiosk_ref: list[Kiosk] = []

        def post(event: Any) -> None:
            kiosk_ref[0].post(event)

        speech, runtime_voice, listener = await _open_speech(config, voice, out_dir, mic, post, packs, problems)
        if speech is not None:
            closers.append(speech.close)
            if speech.listener is not None:
                listen_task = asyncio.ensure_future(speech.listener.run())
                closers.append(listen_task.cancel)
        services.voice_available = listener is not None
        if speech is not None and speech.listener is not None:
            def mic_state(up: bool) -> None:
                # While the microphone is being reopened the prompts name keys, not speech.
                services.voice_available = up

            speech.listener.on_mic = mic_state
        services.face_available = cam is not None and face is not None

        printer = EscposPrinter(config.section("printer", PrinterConfig))
        receipts = ReceiptDevice(printer, lambda: kiosk_ref[0].pack, kiosk_id, out_dir / "receipts" if out_dir else None,
                                 zone=hall_zone(config))
        devices: dict[str, Any] = {"printer": receipts}
        if cam is not None:
            from assistant.vision import CameraDevice, CardDevice

            cam_dev = CameraDevice(cam, face, post, add_frame=enrolments.add_face_frame)
            devices["camera"] = cam_dev
            closers.append(cam_dev.worker.stop)
            if card_reader is not None:
                card_dev = CardDevice(cam, card_reader, post, hold=enrolments.hold_card)
                devices["card"] = card_dev
                closers.append(card_dev.worker.stop)

        from assistant.alerts import make_notifier, open_alerts

        notifier = make_notifier(config)
        kiosk = Kiosk(dialog, packs, display, runtime_voice, transcript, listener, devices, notifier)
        kiosk_ref.append(kiosk)
        services.spawn = kiosk.spawn
        alerts = open_alerts(db, config, packs, notifier)
        services.alerts = alerts
        alerts_stop = asyncio.Event()
        alerts_task = asyncio.ensure_future(_watch_alerts(alerts, services, alerts_stop))
        closers.append(lambda: alerts_task)  # closers run in reverse: stop first, then wait
        closers.append(alerts_stop.set)

        cash_side = None
        if cash is not False:
            cash_side = await _open_cash(config, db, billing, kiosk, cash, problems)
        if cash_side is not None:
            from assistant.cassette import CassetteExchange
            from devices.cash import Unit

            closers.append(cash_side.close)
            services.cash = cash_side.service
            services.cassettes = CassetteExchange(
                db, {Unit.NOTES: cash_side.units.notes, Unit.COINS: cash_side.units.coins}, services.staff
            )

        def packs_reloaded(problems: list[Any]) -> None:
            # the language buttons and the packs a customer may ask for follow the reload
            if not problems:
                services.packs = offered_packs(packs)

        def reload_locales() -> list[Any]:
            # from the staff menu: the dialog draws the staff menu again itself
            problems = packs.reload()
            packs_reloaded(problems)
            return problems

        def reloaded_from_outside(problems: list[Any]) -> None:
            # 'locales reload' (SIGHUP): nothing else would draw the screen on display again
            # until the customer pressed something
            packs_reloaded(problems)
            if not problems:
                kiosk.post(PacksReloaded())

        services.reload_locales = reload_locales

        if write_pid:
            path = pid_file(config)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(pid_record(os.getpid()) + "\n")
            closers.append(lambda: path.unlink(missing_ok=True))
            install_reload_signal(packs, on_result=reloaded_from_outside)
        for p in problems:
            kiosk.transcript.add("info", p)
        return KioskParts(
            config, db, packs, kiosk, dialog, services, speech, cam, face, cash_side, receipts, problems, closers
        )
    except BaseException:
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                result = closer()
                if hasattr(result, "__await__"):
                    await result
        await db.close()
        raise


def offered_packs(packs: LocaleRegistry) -> tuple[str, ...]:
    """The packs a customer may choose (one language button each): the default first, then
    the others in a fixed order, so each language button keeps its place."""
    offered = packs.offered()
    return tuple(sorted(offered, key=lambda pid: (pid != packs.default_id, pid)))


async def _watch_alerts(alerts: Any, services: DialogServices, stop: asyncio.Event) -> None:
    """Keep the dialog's view of the hall (staff on duty, the notice for customers) current
    while the alert service checks its rules (change running out, cashbox full, faults)."""
    runner = asyncio.ensure_future(alerts.run(stop))
    try:
        while not stop.is_set():
            services.staff_present = alerts.staff_present()
            services.customer_notice = alerts.customer_notice()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 30.0)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner


async def _open_cash(config: Config, db: Database, billing: Any, kiosk: Kiosk, factory: Any, problems: list[str]) -> Any:
    """The cash side (units + payment service), or None with the reason recorded."""
    from assistant.cash_setup import open_cash

    def on_device(unit: str, command: str, args: dict[str, Any]) -> None:
        kiosk.transcript.add("device", f"{unit}.{command} {args or ''}".rstrip())

    def on_event(event: Any) -> None:
        alerts = kiosk.dialog.services.alerts
        if alerts is not None:
            alerts.observe(event)  # faults start and end here
        kiosk.post(event)

    try:
        if factory is not None:
            return await factory(db, billing, on_event, on_device)
        return await open_cash(config, db, billing, on_event, on_device)
    except KioskError as exc:
        problems.append(f"cash unavailable ({exc}); card and e-wallet only")
        return None


async def _open_face(config: Config, db: Database, problems: list[str]) -> Any:
    from assistant.identity import face_section

    if not face_section(config).enabled:
        problems.append("face recognition is switched off in [face]; account numbers only")
        return None
    try:
        from assistant.identity import open_face_service

        return await open_face_service(config, db)
    except KioskError as exc:
        problems.append(f"face recognition unavailable ({exc}); account numbers only")
        return None


def _open_camera(config: Config, problems: list[str]) -> Any:
    from assistant.identity import face_section
    from devices.camera import open_camera

    section = face_section(config)
    try:
        return open_camera(section.camera, section.camera_width, section.camera_height)
    except KioskError as exc:
        problems.append(f"camera unavailable ({exc}); account numbers only")
        return None


def _open_card_reader(config: Config, problems: list[str]) -> Any:
    try:
        from devices.card_ocr import create_card_reader

        return create_card_reader(config)
    except KioskError as exc:
        problems.append(f"bank card reading unavailable ({exc})")
        return None


async def _open_speech(
    config: Config, mode: str, out_dir: Path | None, mic: Any, post: Callable[[Any], None], packs: LocaleRegistry, problems: list[str]
) -> tuple[Any, Voice, Any]:
    """The speech parts and the runtime's voice and listener adapters."""
    from speech.audio import NullOutput
    from speech.voice import open_voice

    sample = packs.default.render(Prompt.TTS_SELF_TEST, {}).speech
    loudspeaker = NullOutput() if mode in ("wav", "silent") else None
    speech = await open_voice(config, post, mic=mic, loudspeaker=loudspeaker, self_test_text=sample)
    problems.extend(speech.problems)
    runtime_voice: Voice
    if mode == "silent" or speech.speaker is None:
        runtime_voice = SilentVoice()
    elif mode == "wav":
        runtime_voice = WavVoice(speech.speaker, (out_dir or Path(".")) / "speech")
    else:
        runtime_voice = SpeakerVoice(speech.speaker)
    listener = GrammarListener(speech.listener) if speech.listener is not None else None
    return speech, runtime_voice, listener
