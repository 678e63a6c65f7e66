"""Building the kiosk's cash side from ``[cash]``: the two units (and the simulator), the service.

:func:`open_cash` is what the kiosk builder calls: it opens both units (starting the
SSP simulator on a pseudo-terminal first when ``simulate = true``), starts the
:class:`~assistant.cash_payment.CashPaymentService` and resolves any payment a crash
left open. A unit that does not answer raises
:class:`~assistant.errors.CashDeviceNotResponding` (prompt ``error_device``); the
kiosk then runs without cash and says so.

:func:`demo_cash` gives the headless demo its own simulator in the output folder and a
factory for the service on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.billing import Billing
from assistant.cash_payment import CashPaymentService
from assistant.config import Config
from assistant.messages import CashEvent
from assistant.storage import Database
from devices.cash import CashConfig, CashUnits, create_cash_units
from devices.cash_sim import CashSimulator


@dataclass
class CashSide:
    """The running cash side: close it when the kiosk stops."""

    service: CashPaymentService
    units: CashUnits

    @property
    def simulator(self) -> CashSimulator | None:
        """The in-process simulator, when the kiosk runs one."""
        return self.units.simulator

    async def close(self) -> None:
        """Stop the service (closes the units) and the simulator."""
        await self.service.stop()
        if self.units.simulator is not None:
            self.units.simulator.stop()


async def open_cash(
    config: Config,
    db: Database,
    billing: Billing,
    on_event: Callable[[CashEvent], None],
    on_device: Callable[[str, str, dict[str, Any]], None] | None = None,
    *,
    cash_config: CashConfig | None = None,
    start_simulator: bool | None = None,
) -> CashSide:
    """Open the units, start the payment service and recover open payments.

    Args:
        config: the kiosk config (``[cash]``, ``[kiosk] id``, the data folder).
        db: the open kiosk database.
        billing: where postings go.
        on_event: receives the service's :class:`CashEvent` progress (the dialog's queue).
        on_device: receives (unit, command, args) for the transcript.
        cash_config: use this instead of ``[cash]``.
        start_simulator: override ``simulate`` (False when a simulator already runs).
    """
    cfg = cash_config or config.section("cash", CashConfig)
    units = create_cash_units(cfg, config.data_dir, start_simulator=start_simulator)
    service = CashPaymentService(db, billing, units.notes, units.coins, config.kiosk.id, on_event,
                                 on_device, config=cfg)
    try:
        await service.start()
        await service.recover()
    except BaseException:
        await service.stop()
        if units.simulator is not None:
            units.simulator.stop()
        raise
    return CashSide(service, units)


CashFactory = Callable[..., Awaitable[CashSide]]


def demo_cash(config: Config, out: Path) -> tuple[CashSimulator, CashFactory]:
    """A simulator for the demo (state and port link in ``out/cash``), already running.

    Returns the simulator (the demo's "customer" inserts notes into it) and
    ``factory(db, billing, on_event, on_device=None) -> CashSide`` which opens the
    service on it with the real pyserial driver.
    """
    base = config.section("cash", CashConfig)
    folder = (out / "cash").resolve()
    cfg = dataclasses.replace(base, simulate=True, port=str(folder / "ssp.tty"), notes_port="",
                              coins_port="", sim_state=str(folder / "sim.json"))
    sim = CashSimulator.from_config(cfg, folder)
    sim.start()

    async def factory(db: Database, billing: Billing, on_event: Callable[[CashEvent], None],
                      on_device: Callable[[str, str, dict[str, Any]], None] | None = None) -> CashSide:
        return await open_cash(config, db, billing, on_event, on_device, cash_config=cfg,
                               start_simulator=False)

    return sim, factory
