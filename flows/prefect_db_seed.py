"""A new data dir's Prefect database, copied from a migrated template instead of migrated anew.

The embedded run's Prefect server keeps its SQLite database in the data dir's Prefect home.
In a new data dir the server first creates it by running all of Prefect's migrations (114
alembic revisions for SQLite in Prefect 3.8): ~2.5–3.5 s of CPU on the 2-core box, against
0.05 s for the same check on a database already at head (docs/performance.md). The result is
the same file every time, so it is made once per machine and Prefect version and copied:

1. ``seed_database()`` (before the server starts): when the database does not exist and a
   template for this Prefect version and migration set exists, copy the template to a
   temporary file beside the database, switch the copy to WAL mode (as Prefect's own
   migration leaves a database) and ``link(2)`` it into place. ``link`` never replaces an
   existing file, so two runs starting together in one data dir cannot swap a database under
   a server that already opened it (a rename could).
2. ``build_template()`` (in the server, when step 1 found no template): migrate the new
   database to head, as the server would, then snapshot it with SQLite's online backup into a
   temporary file in the cache and rename that into place. The snapshot is taken before the
   server serves anything, so the template holds only what the migrations create.

The template's name carries the Prefect version and a hash of the SQLite migration file
names, so an upgrade of Prefect never seeds an older schema (and a database at an older head
would be migrated by Prefect anyway). Only SQLite files are seeded; PostgreSQL and in-memory
databases are left to Prefect. Cache: ``$STEPFOLEY_CACHE_DIR`` or ``$XDG_CACHE_HOME/stepfoley``
(default ``~/.cache/stepfoley``); deleting it only costs the next new data dir the migration.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import sqlite3
from pathlib import Path

log = logging.getLogger("stepfoley.prefect_db")


def sqlite_path() -> Path | None:
    """The Prefect server's SQLite database file, or None when it is not a SQLite file."""
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    url = str(PREFECT_API_DATABASE_CONNECTION_URL.value() or "")
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix):].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def cache_dir() -> Path:
    if os.environ.get("STEPFOLEY_CACHE_DIR"):
        return Path(os.environ["STEPFOLEY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stepfoley"


def template_path() -> Path:
    """The template for this Prefect version and SQLite migration set."""
    import prefect
    import prefect.server.database as pdb

    versions = Path(pdb.__file__).parent / "_migrations" / "versions" / "sqlite"
    names = sorted(p.name for p in versions.glob("*.py")) if versions.is_dir() else []
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    return cache_dir() / f"prefect-{prefect.__version__}-sqlite-{digest}.db"


def seed_database() -> bool:
    """Copy the template into place when the database does not exist yet; True if it did."""
    db = sqlite_path()
    if db is None or db.exists():
        return False
    template = template_path()
    if not template.is_file():
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.seed-{os.getpid()}")
    try:
        shutil.copyfile(template, tmp)
        _to_wal(tmp)
        os.link(tmp, db)
    except FileExistsError:  # another run created it meanwhile: theirs stands
        return False
    except (OSError, sqlite3.Error) as exc:  # no template copy; Prefect migrates as usual
        log.debug("seeding the Prefect database failed: %s", exc)
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def build_template() -> bool:
    """Migrate a new database to head and keep a snapshot of it as the template; True if it
    wrote one. Called by the server process before it serves."""
    db = sqlite_path()
    template = template_path()
    if db is None or db.exists() or template.is_file():
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_migrate())
    template.parent.mkdir(parents=True, exist_ok=True)
    tmp = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        src = sqlite3.connect(db)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
            src.close()
        os.replace(tmp, template)
    except (OSError, sqlite3.Error) as exc:  # the run goes on; the next new data dir migrates
        log.debug("writing the Prefect database template failed: %s", exc)
        tmp.unlink(missing_ok=True)
        return False
    return True


def _to_wal(path: Path) -> None:
    """Put the private copy in write-ahead-log mode, as a database Prefect migrated itself is.

    The template is kept as one self-contained file (rollback journal). Seeded as it is, the
    server's first connections would each try to switch it to WAL on connect (Prefect's
    per-connection pragma), a change that needs the database to itself while the server's
    services open theirs; done here, on the private copy, nothing can compete for it."""
    con = sqlite3.connect(path)
    try:
        if con.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise sqlite3.OperationalError(f"{path}: could not switch to WAL")
    finally:
        con.close()


async def _migrate() -> None:
    """The server's own start-up migration (``create_db``), on a loop of its own; its engine
    is disposed so no connection outlives the loop."""
    from prefect.server.database import provide_database_interface

    interface = provide_database_interface()
    await interface.create_db()
    await (await interface.engine()).dispose()
