"""One nightly run per store at a time: the second run stops at once, naming the running one.

PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held on a connection of its own for
the whole run; the holder is named by its connection's `application_name`. SQLite: an exclusive
`flock` on `<database file>.run-lock`, whose text names the holder. Both are released by the
operating system or the server when the process dies, even by SIGKILL: a killed run never blocks
the next one. (Cooperating runs that claim rows with SELECT ... FOR UPDATE SKIP LOCKED were the
alternative; one run at a time keeps caps and retry passes simple. docs/architecture.md.)
"""

from __future__ import annotations

import os
import socket
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from lojal.errors import RunLockedError

_LOCK_KEY = (0x6C6F6A61, 1)  # "loja", nightly run
_HINT = ("this run stops without sending anything. Wait for it to finish (`lojal runs` lists it) or stop "
         "that process; a killed run releases the lock by itself")


def _who(run_date: date) -> str:
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"lojal run {run_date} pid {os.getpid()} on {socket.gethostname()} since {started}"


class RunLock:
    """Held for one run; `release()` (or the process's death) frees it."""

    def __init__(self, engine: Engine, run_date: date):
        self.engine = engine
        self.who = _who(run_date)
        self._conn: Connection | None = None
        self._file = None
        if engine.dialect.name == "postgresql":
            self._lock_postgres()
        elif engine.dialect.name == "sqlite":
            self._lock_sqlite()

    def _lock_postgres(self) -> None:
        conn = self.engine.connect()
        conn.execute(text("SELECT set_config('application_name', :who, false)"), {"who": self.who[:63]})
        got = conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": _LOCK_KEY[0], "b": _LOCK_KEY[1]}).scalar()
        conn.commit()
        if not got:
            holder = conn.execute(text(
                "SELECT a.application_name, a.pid, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = :a AND l.objid = :b "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"a": _LOCK_KEY[0], "b": _LOCK_KEY[1]}).first()
            conn.close()
            named = (f"{holder[0] or 'an unnamed session'} (PostgreSQL backend {holder[1]}, connected "
                     f"{holder[2]:%Y-%m-%d %H:%M:%S %Z})" if holder else "a run that just finished")
            raise RunLockedError(f"another run is using this store: {named}; {_HINT}")
        self._conn = conn

    def _lock_sqlite(self) -> None:
        import fcntl

        database = self.engine.url.database
        if not database or database == ":memory:":
            return
        path = Path(database + ".run-lock")
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another lojal run"
            handle.close()
            raise RunLockedError(f"another run is using this store ({database}): {holder}; {_HINT}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(self.who + "\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": _LOCK_KEY[0], "b": _LOCK_KEY[1]})
            finally:
                self._conn.close()
                self._conn = None
        if self._file is not None:
            import fcntl

            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
