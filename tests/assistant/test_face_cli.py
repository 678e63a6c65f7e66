"""``main.py face ...``: calibration on labelled real photos; enrol, identify, forget, purge."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="OpenCV (the face extra) is not installed")

from assistant.cli import main as cli_main  # noqa: E402
from assistant.face_cli import calibrate_folder  # noqa: E402
from assistant.storage import Database  # noqa: E402
from devices.face import InsightFaceRecognizer  # noqa: E402
from tests.face_support import load, provisioned  # noqa: E402


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """obama (3 photos), biden, newton, gauss; plus a group photo and an empty view to skip."""
    photos, groups = provisioned("face-images"), provisioned("scrfd-images")
    root = tmp_path_factory.mktemp("labelled")
    for person, files in {
        "obama": [photos / "obama.jpg", photos / "obama2.jpg", photos / "obama3.jpg"],
        "biden": [photos / "biden.jpg"],
        "newton": [groups / "newton.png"],
        "gauss": [groups / "gauss.png"],
        "crowd": [groups / "solvay_conference_1927.jpg"],
    }.items():
        (root / person).mkdir()
        for f in files:
            shutil.copy(f, root / person / f.name)
    (root / "nobody").mkdir()
    cv2.imwrite(str(root / "nobody" / "ceiling.png"), load(photos / "obama.jpg")[:150, :350])
    (root / "obama" / "notes.txt").write_text("ignored")
    return root


@pytest.fixture
def cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KIOSK_DATA_DIR", raising=False)
    models = provisioned("face").parent
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(
        f'[kiosk]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[storage]\npath = "{tmp_path / "kiosk.db"}"\n'
        f'[models]\nmodels_dir = "{models}"\n'
        "[face]\nthresholds = { face = 0.55 }\n"
    )
    return cfg


def test_calibration_pairs_and_recommendation(labelled):
    engine = InsightFaceRecognizer(provisioned("face"), model_id="face")
    cal = calibrate_folder(engine, labelled)
    assert cal.faces == 6 and cal.persons == 4
    assert cal.genuine.size == 3 and cal.impostor.size == 12
    assert sorted(str(p.name) for p, _ in cal.skipped) == ["ceiling.png", "solvay_conference_1927.jpg"]
    assert cal.genuine.min() > 0.6 and cal.impostor.max() < 0.3
    t = cal.recommend(0.0)
    assert cal.impostor.max() < t <= cal.impostor.max() + 0.005
    rates = {p.threshold: p for p in cal.rates([0.0, t, 0.7])}
    assert rates[t].far == 0.0 and rates[t].frr == 0.0
    assert rates[0.0].frr == 0.0 and rates[0.0].far == pytest.approx(np.mean(cal.impostor >= 0.0))


def test_calibrate_on_too_few_photos_gives_no_threshold_to_paste(tmp_path, cli_config, capsys):
    """Two persons with one photo each: no genuine pair, so any threshold printed would be a
    guess (it used to print one that turned every customer away)."""
    photos = provisioned("face-images")
    for person in ("obama", "biden"):
        (tmp_path / "few" / person).mkdir(parents=True)
        shutil.copy(photos / f"{person}.jpg", tmp_path / "few" / person)
    assert cli_main(["--config", str(cli_config), "face", "calibrate", str(tmp_path / "few")]) == 0
    out = capsys.readouterr().out
    assert "no threshold to paste:" in out and "no genuine pair was scored" in out
    assert "config: [face] thresholds" not in out


def test_calibrate_command_prints_the_table_and_config_line(labelled, cli_config, capsys):
    assert cli_main(["--config", str(cli_config), "face", "calibrate", str(labelled), "--target-far", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "4 persons, 6 faces: 3 genuine pairs, 12 impostor pairs" in out
    assert "threshold     FAR      FRR" in out and "   0.55     0.00%    0.00%" in out
    assert "recommended threshold for FAR <= 1.00%" in out
    assert "warning: 12 impostor pairs can only show a FAR down to about 25.00%" in out
    assert 'config: [face] thresholds = { "face" = ' in out
    assert "skipped" in out and "several_faces" in out and "no_face" in out


def test_calibration_skips_unreadable_photos_and_reads_odd_formats(tmp_path, cli_config, capsys):
    # one truncated PNG among the photos used to stop the whole calibration
    from PIL import Image

    photos = provisioned("face-images")
    for person in ("obama", "biden"):
        (tmp_path / person).mkdir()
    shutil.copy(photos / "obama.jpg", tmp_path / "obama" / "a.jpg")
    Image.open(photos / "obama2.jpg").convert("L").save(tmp_path / "obama" / "grey.jpg")
    Image.open(photos / "obama3.jpg").convert("RGBA").save(tmp_path / "obama" / "alpha.png")
    png = (tmp_path / "obama" / "alpha.png").read_bytes()
    (tmp_path / "obama" / "cut.png").write_bytes(png[: len(png) // 3])
    (tmp_path / "obama" / "empty.jpg").write_bytes(b"")
    shutil.copy(photos / "biden.jpg", tmp_path / "biden" / "b.jpg")
    Image.open(photos / "biden.jpg").convert("CMYK").save(tmp_path / "biden" / "cmyk.jpg")
    Image.new("RGB", (1, 1)).save(tmp_path / "biden" / "dot.png")
    assert cli_main(["--config", str(cli_config), "face", "calibrate", str(tmp_path), "--target-far", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "2 persons, 5 faces: 4 genuine pairs, 6 impostor pairs" in out
    skipped = sorted(line for line in out.splitlines() if line.startswith("skipped"))
    assert skipped == [
        f"skipped {tmp_path / 'biden' / 'dot.png'}: no_face",
        f"skipped {tmp_path / 'obama' / 'cut.png'}: not a readable image",
        f"skipped {tmp_path / 'obama' / 'empty.jpg'}: not a readable image",
    ]


def test_enrol_identify_forget_purge_commands(cli_config, tmp_path, capsys):
    photos = provisioned("face-images")

    async def setup():
        async with Database(tmp_path / "kiosk.db") as db, db.transaction() as tx:
            await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('U1', '13800138000')")
            await tx.execute(
                "INSERT INTO staff(staff_no, name, role, pin_hash) VALUES ('H001', 'x', 'hall', 'x')"
            )

    asyncio.run(setup())
    cfg = ["--config", str(cli_config), "face"]
    # without consent the enrolment is refused with a readable message
    assert cli_main([*cfg, "enrol-photo", str(photos / "obama.jpg"), "--phone", "13800138000"]) == 1
    assert "not consented" in capsys.readouterr().err
    assert cli_main([*cfg, "enrol-photo", str(photos / "obama.jpg"), "--phone", "13800138000",
                     "--record-consent", "--staff", "H001"]) == 0
    assert "enrolled from 1 photo(s)" in capsys.readouterr().out
    assert cli_main([*cfg, "identify", str(photos / "obama3.jpg")]) == 0
    assert "outcome=identified customer_id=1" in capsys.readouterr().out
    assert cli_main([*cfg, "identify", str(photos / "biden.jpg")]) == 0
    assert "outcome=unknown customer_id=None" in capsys.readouterr().out
    assert cli_main([*cfg, "purge"]) == 0
    assert "0 face template(s) older than 730 days deleted" in capsys.readouterr().out
    assert cli_main([*cfg, "forget", "--phone", "13800138000", "--staff", "H001"]) == 0
    assert "1 face template(s) deleted" in capsys.readouterr().out
    assert cli_main([*cfg, "identify", str(photos / "obama3.jpg")]) == 0
    assert "outcome=unknown" in capsys.readouterr().out
    assert cli_main([*cfg, "forget", "--phone", "13999999999", "--staff", "H001"]) == 1
    assert "no customer" in capsys.readouterr().err
    # a withdrawal nobody took, or a consent nobody took, is not recorded
    with pytest.raises(SystemExit):
        cli_main([*cfg, "forget", "--phone", "13800138000"])
    assert "--staff" in capsys.readouterr().err
    assert cli_main([*cfg, "enrol-photo", str(photos / "obama.jpg"), "--phone", "13800138000", "--record-consent"]) == 1
    assert "--record-consent needs --staff" in capsys.readouterr().err

    async def consents():
        async with Database(tmp_path / "kiosk.db") as db:
            return [tuple(r) for r in await db.fetchall("SELECT granted, staff_id FROM consent ORDER BY id")]

    assert asyncio.run(consents()) == [(1, 1), (0, 1)]


def test_enrol_demo_customers(tmp_path, monkeypatch, capsys):
    from assistant.seed import seed

    monkeypatch.delenv("KIOSK_DATA_DIR", raising=False)
    cfg = demo_config(tmp_path)

    async def seeded():
        async with Database(tmp_path / "kiosk.db") as db:
            report = await seed(db, tmp_path / "var")
            return report.face_photos

    photos = asyncio.run(seeded())
    assert len(photos) == 1
    user_id = next(iter(photos))
    assert cli_main(["--config", str(cfg), "face", "enrol-demo"]) == 0
    assert f"customer {user_id}: enrolled from face-images/obama.jpg" in capsys.readouterr().out
    assert cli_main(["--config", str(cfg), "face", "enrol-demo"]) == 0
    assert "already enrolled" in capsys.readouterr().out
    assert cli_main(["--config", str(cfg), "face", "identify", str(provisioned("face-images") / "obama2.jpg")]) == 0
    assert f"outcome=identified customer_id={user_id}" in capsys.readouterr().out


def demo_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(
        f'[kiosk]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[storage]\npath = "{tmp_path / "kiosk.db"}"\n'
        f'[models]\nmodels_dir = "{provisioned("face").parent}"\n'
        f'data_dir = "{provisioned("face-images").parent}"\n'
        "[face]\nthresholds = { face = 0.55 }\n"
    )
    return cfg


def test_enrol_demo_does_not_give_back_a_withdrawn_consent(tmp_path, monkeypatch, capsys):
    """After 'face forget' (the customer withdrew face consent), 'enrol-demo' must not enrol
    the customer again on its own: it says so and records nothing; only staff recording that
    the customer consented anew ('--renew-consent --staff') enrols them. Every consent
    decision names the staff member."""
    from assistant.seed import seed

    monkeypatch.delenv("KIOSK_DATA_DIR", raising=False)
    cfg = ["--config", str(demo_config(tmp_path)), "face"]

    async def seeded() -> int:
        async with Database(tmp_path / "kiosk.db") as db:
            report = await seed(db, tmp_path / "var")
            return next(iter(report.face_photos))

    async def consents(user_id: int) -> list[tuple]:
        async with Database(tmp_path / "kiosk.db") as db:
            rows = await db.fetchall(
                "SELECT c.granted, s.staff_no FROM consent c LEFT JOIN staff s ON s.id = c.staff_id "
                "WHERE c.user_id = ? ORDER BY c.id", (user_id,))
            return [tuple(r) for r in rows]

    user_id = asyncio.run(seeded())
    obama2 = str(provisioned("face-images") / "obama2.jpg")
    assert cli_main([*cfg, "enrol-demo"]) == 0
    assert f"customer {user_id}: consent recorded by staff H001" in capsys.readouterr().out
    assert asyncio.run(consents(user_id)) == [(1, "H001")]
    assert cli_main([*cfg, "forget", "--user", str(user_id), "--staff", "B001"]) == 0
    capsys.readouterr()

    assert cli_main([*cfg, "enrol-demo"]) == 1
    out, err = capsys.readouterr()
    assert f"customer {user_id}: not enrolled: the customer withdrew face consent" in err
    assert "--renew-consent --staff" in err and "enrolled from" not in out
    assert asyncio.run(consents(user_id)) == [(1, "H001"), (0, "B001")]  # nothing re-granted
    assert cli_main([*cfg, "identify", obama2]) == 0
    assert "outcome=unknown" in capsys.readouterr().out

    # renewing needs the name of who took the new consent
    assert cli_main([*cfg, "enrol-demo", "--renew-consent"]) == 1
    assert "--renew-consent needs --staff" in capsys.readouterr().err
    assert cli_main([*cfg, "enrol-demo", "--renew-consent", "--staff", "H001"]) == 0
    assert f"customer {user_id}: consent renewed by staff H001" in capsys.readouterr().out
    assert asyncio.run(consents(user_id)) == [(1, "H001"), (0, "B001"), (1, "H001")]
    assert cli_main([*cfg, "identify", obama2]) == 0
    assert f"outcome=identified customer_id={user_id}" in capsys.readouterr().out


async def test_a_consent_record_without_staff_is_refused_by_the_database(db):
    import sqlite3

    from assistant.errors import FaceError
    from assistant.face_cli import record_consent

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('U1', '13800138000')")
        await tx.execute("INSERT INTO staff(staff_no, name, role, pin_hash) VALUES ('H001', 'x', 'hall', 'x')")
    with pytest.raises(FaceError, match="staff member"):
        await record_consent(db, 1, None)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError, match="staff member"):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO consent(user_id, purpose, granted) VALUES (1, 'face', 0)")
    await record_consent(db, 1, 1)
    with pytest.raises(sqlite3.IntegrityError, match="staff member"):
        async with db.transaction() as tx:
            await tx.execute("UPDATE consent SET staff_id = NULL")
    assert [tuple(r) for r in await db.fetchall("SELECT granted, staff_id FROM consent")] == [(1, 1)]


def test_face_commands_with_odd_numbers_end_in_one_line(cli_config, tmp_path, capsys):
    """A retention longer than the calendar goes back, or a false-accept target that is not a
    rate, ends with one clear line and a non-zero code (or nothing to delete), never a traceback."""
    cfg = ["--config", str(cli_config), "face"]
    assert cli_main([*cfg, "purge", "--days", "100000000000"]) == 0
    assert "0 face template(s) older than 100000000000 days deleted" in capsys.readouterr().out
    for far in ("-1", "1.5", "nan"):
        assert cli_main([*cfg, "calibrate", str(tmp_path), "--target-far", far]) == 1, far
        err = capsys.readouterr().err
        assert "--target-far" in err and "between 0 and 1" in err and len(err.strip().splitlines()) == 1
