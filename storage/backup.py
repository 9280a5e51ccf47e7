"""Consistent backups of the database and the media files, and restoring them.

A backup is one ``.tar.gz``: ``manifest.json`` (format, dialect, time, the media files), the database
(``database.sqlite3`` made with SQLite's online backup API, consistent while the server writes; or
``database.dump``, PostgreSQL's ``pg_dump -Fc``) and ``media/`` (the residents' photos). Restoring
refuses a database that already holds residents, complaints or staff accounts unless forced.

Errors: :class:`BackupError` (what went wrong and what to do), raised by both directions.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from storage.db import sqlite_path

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
POSTGRES_FILE = "database.dump"
MEDIA = "media"
# A database holding any of these is not restored over without --force.
KEPT_TABLES = ("residents", "complaints", "staff_users")
CLIENT_PACKAGE = "postgresql-client"


class BackupError(Exception):
    """A backup or restore cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What a backup holds."""

    path: Path
    dialect: str
    media_files: int
    bytes: int


def backup(database_url: str, media_dir: Path, destination: Path) -> BackupSummary:
    """Write a consistent backup of the database at ``database_url`` and of ``media_dir``."""
    destination = destination.resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    media = sorted(p for p in media_dir.rglob("*") if p.is_file()) if media_dir.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dialect, name = _dump(database_url, work)
        manifest = {
            "format": FORMAT,
            "dialect": dialect,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": name,
            "media": [str(p.relative_to(media_dir)) for p in media],
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        partial = destination.with_name(destination.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(work / MANIFEST, arcname=MANIFEST)
            tar.add(work / name, arcname=name)
            for path in media:
                tar.add(path, arcname=f"{MEDIA}/{path.relative_to(media_dir)}")
        partial.replace(destination)  # never a half-written backup under the real name
    return BackupSummary(destination, dialect, len(media), destination.stat().st_size)


def restore(database_url: str, media_dir: Path, source: Path, *, force: bool = False) -> dict[str, object]:
    """Put the database and media of the backup ``source`` back; returns its manifest.

    Raises:
        BackupError: not a backup, another kind of database, a database that is not empty (without
            ``force``), or the PostgreSQL client tools are missing.
    """
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    try:
        with tarfile.open(source, "r:gz") as tar, tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            tar.extractall(work, filter="data")
            manifest = _manifest(work, source)
            dialect = _dialect(database_url)
            if manifest["dialect"] != dialect:
                raise BackupError(
                    f"{source} is a {manifest['dialect']} backup; the configured database is {dialect}"
                )
            if not force and not database_is_empty(database_url):
                raise BackupError(
                    "the database already holds residents, complaints or staff accounts: restoring would "
                    "replace them; stop the server, then run again with --force"
                )
            _load(database_url, work / str(manifest["database"]))
            restored_media = work / MEDIA
            if restored_media.is_dir():
                shutil.copytree(restored_media, media_dir, dirs_exist_ok=True)
            return manifest
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"{source}: cannot read the backup ({exc})") from exc


def database_is_empty(database_url: str) -> bool:
    """True when no table of :data:`KEPT_TABLES` exists or holds a row."""
    path = sqlite_path(database_url)
    if path is not None:
        if not path.exists():
            return True
        with closing(sqlite3.connect(path)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return not any(
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                for table in KEPT_TABLES
                if table in tables
            )
    conninfo, env = _libpq(database_url)
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD")) as conn:
        for table in KEPT_TABLES:
            exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            present = exists is not None and exists[0] is not None
            if present and conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                return False
    return True


def _dialect(database_url: str) -> str:
    return "sqlite" if make_url(database_url).drivername.startswith("sqlite") else "postgresql"


def _manifest(work: Path, source: Path) -> dict[str, object]:
    try:
        manifest = json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a pontibot backup (no readable {MANIFEST})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: unknown backup format {manifest.get('format')!r}")
    if manifest.get("database") not in (SQLITE_FILE, POSTGRES_FILE):
        raise BackupError(f"{source}: the manifest names no database file")
    return manifest


def _dump(database_url: str, work: Path) -> tuple[str, str]:
    """The database into ``work``: (dialect, file name)."""
    path = sqlite_path(database_url)
    if path is not None:
        if not path.exists():
            raise BackupError(f"{path}: no database file (run `pontibot db upgrade` first)")
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(work / SQLITE_FILE)) as copy:
            source.backup(copy)  # page by page; a consistent snapshot while the server writes
        return "sqlite", SQLITE_FILE
    conninfo, env = _libpq(database_url)
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
          f"--file={work / POSTGRES_FILE}", f"--dbname={conninfo}"], env)  # fmt: skip
    return "postgresql", POSTGRES_FILE


def _load(database_url: str, dump: Path) -> None:
    path = sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(dump)) as source, closing(sqlite3.connect(path)) as target:
            source.backup(target)  # replaces every page of the target in one go
        return
    conninfo, env = _libpq(database_url)
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
          "--single-transaction", f"--dbname={conninfo}", str(dump)], env)  # fmt: skip


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment that carries it (not the command line)."""
    url = make_url(database_url).set(drivername="postgresql")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(password=None).render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install Debian's {CLIENT_PACKAGE} (apt-get install {CLIENT_PACKAGE})"
        )
    return found


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip() or done.returncode}")
