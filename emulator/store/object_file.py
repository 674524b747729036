"""The SQLite file that holds the S3 objects of every bucket kept on disk (:mod:`emulator.store.s3_objects`).

A row per (store, key name): ``store`` names one bucket's rows (a bucket keeps its store's name, and a
snapshot holds a bucket as that name), ``versions`` is the key name's list of versions, pickled. The
file is the user's own (0600), and one another user owns or could write is refused, as the snapshot is:
its rows are pickles. Writes go through SQLite's write-ahead log with ``synchronous=NORMAL``: a commit
outlives a crash of the emulator, not a power cut.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from base.errors import JitrError

# A rowid table (its key in an index beside it), not WITHOUT ROWID: rows of a kilobyte and more (a pickled
# S3 object) took 4.7 KB each of file in a WITHOUT ROWID table, 1.5 KB in this one, and wrote faster.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS objects (store TEXT NOT NULL, name TEXT NOT NULL, versions BLOB NOT NULL,"
    " PRIMARY KEY (store, name))"
)


class ObjectFileError(JitrError):
    """The emulator's S3 object file cannot be opened, read or written."""


class ObjectFile:
    """One SQLite file; every call holds :attr:`lock` (one connection, shared by the server's threads)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                status = self.path.stat()
                if status.st_uid != os.getuid() or status.st_mode & 0o022:
                    raise ObjectFileError(
                        f"The emulator's S3 object file {self.path} is writable by, or belongs to, another user; it "
                        "is not opened, since reading its objects runs what is in it (move it away, or start "
                        "with --fresh)."
                    )
            self.path.touch(mode=0o600, exist_ok=True)
            self.path.chmod(0o600)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ObjectFileError(f"Cannot open the emulator's S3 object file {self.path}: {exc}.") from exc

    def _run(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self.lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise ObjectFileError(f"The emulator's S3 object file {self.path} failed: {exc}.") from exc

    def write(self, store: str, rows: list[tuple[str, bytes]]) -> None:
        """Insert or replace ``(name, versions)`` rows of one store, in one transaction."""
        with self.lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO objects (store, name, versions) VALUES (?, ?, ?)",
                    [(store, name, data) for name, data in rows],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise ObjectFileError(f"The emulator's S3 object file {self.path} failed: {exc}.") from exc

    def versions(self, store: str, name: str) -> bytes | None:
        rows = self._run("SELECT versions FROM objects WHERE store = ? AND name = ?", (store, name))
        return bytes(rows[0][0]) if rows else None

    def names(self, store: str, after: str, *, inclusive: bool, below: str | None, limit: int) -> list[str]:
        """Up to ``limit`` names of a store past ``after`` (or from it, ``inclusive``) and below ``below``, in
        order (SQLite compares UTF-8 bytes, which orders as Python compares strings)."""
        sql = f"SELECT name FROM objects WHERE store = ? AND name {'>=' if inclusive else '>'} ?"
        parameters: tuple = (store, after)
        if below is not None:
            sql, parameters = sql + " AND name < ?", parameters + (below,)
        return [row[0] for row in self._run(sql + " ORDER BY name LIMIT ?", parameters + (limit,))]

    def delete(self, store: str, name: str | None = None) -> None:
        """Delete one name's row, or (``name`` None) every row of a store."""
        if name is None:
            self._run("DELETE FROM objects WHERE store = ?", (store,))
        else:
            self._run("DELETE FROM objects WHERE store = ? AND name = ?", (store, name))

    def count(self, store: str) -> int:
        return int(self._run("SELECT count(*) FROM objects WHERE store = ?", (store,))[0][0])

    def size(self, store: str) -> int:
        """The bytes a store's rows hold."""
        return int(self._run("SELECT coalesce(sum(length(versions)), 0) FROM objects WHERE store = ?", (store,))[0][0])

    def stores(self) -> set[str]:
        return {row[0] for row in self._run("SELECT DISTINCT store FROM objects")}

    def drop_stores_except(self, keep: set[str]) -> int:
        """Delete the rows of buckets no longer in the state (created after the last snapshot and lost with
        it, or gone); how many stores were dropped."""
        gone = self.stores() - keep
        for store in gone:
            self.delete(store)
        return len(gone)
