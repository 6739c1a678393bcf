"""Leases: one holder at a time for a named piece of work (a station's retrain), kept in the
database itself, so a holder that died never blocks the work.

A holder renews its lease every few seconds from a thread of its own; another process may
take the lease over when the holder's process is gone (same host: it no longer exists, or
is another process under a reused number) or has not renewed it for `ttl` seconds (any host,
or a holder frozen in place). Prefect's global concurrency slots were used before; a
retrain killed with SIGKILL left its slot taken for ever, since the slot's lease lived in
the killed command's own temporary API server.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psutil
from sqlalchemy import String, delete, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from registry.db import Base, utc_time

TTL_SECONDS = 60.0  # a holder that has not renewed for this long is taken to be stuck


class LeaseRow(Base):
    """Who holds the named work now: host, process id and its start time (which tells a
    reused process id apart), when taken and when last renewed."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    process_started: Mapped[float]
    taken_at: Mapped[utc_time]
    renewed_at: Mapped[utc_time]


class LeaseBusy(RuntimeError):
    """The work is held by a live holder, and waiting for it took too long."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    process_started: float

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    def alive(self) -> bool:
        """False only when this host can tell: the process is gone, a zombie, or another
        process now has its number. Another host's holder counts as alive."""
        if self.host != socket.gethostname():
            return True
        try:
            process = psutil.Process(self.pid)
            return (process.status() != psutil.STATUS_ZOMBIE
                    and abs(process.create_time() - self.process_started) < 1)
        except psutil.NoSuchProcess:
            return False

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def describe(row: LeaseRow) -> str:
    """Who holds a lease, in words."""
    return (f"{Holder(row.host, row.pid, row.process_started)} (since "
            f"{row.taken_at:%Y-%m-%d %H:%M:%S} UTC, renewed {row.renewed_at:%H:%M:%S})")


def try_take(session: Session, name: str, me: Holder, ttl: float) -> str | None:
    """Take the lease `name` if it is free, or its holder is dead or stale: None when taken,
    else who holds it. The caller commits; a lost race shows up as IntegrityError there or
    as an update that matched no row."""
    now = datetime.now(UTC)
    row = session.get(LeaseRow, name)
    if row is None:
        session.add(LeaseRow(name=name, host=me.host, pid=me.pid,
                             process_started=me.process_started, taken_at=now, renewed_at=now))
        return None
    holder = Holder(row.host, row.pid, row.process_started)
    stale = now - row.renewed_at.replace(tzinfo=UTC) > timedelta(seconds=ttl)
    if holder.alive() and not stale:
        return describe(row)
    taken = session.execute(
        update(LeaseRow).where(LeaseRow.name == name, LeaseRow.pid == row.pid,
                               LeaseRow.host == row.host,
                               LeaseRow.process_started == row.process_started)
        .values(host=me.host, pid=me.pid, process_started=me.process_started, taken_at=now,
                renewed_at=now).execution_options(synchronize_session=False))
    return None if taken.rowcount == 1 else describe(row)


@contextmanager
def held(sessions: sessionmaker, name: str, wait_seconds: float,
         on_wait: Callable[[str], None] = lambda holder: None, ttl: float = TTL_SECONDS,
         poll_seconds: float = 1.0) -> Iterator[None]:
    """Hold the lease `name` while the block runs, renewing it every `ttl` / 4 seconds.
    While another live holder has it, wait (calling `on_wait` with who holds it, once) for
    up to `wait_seconds`, then raise LeaseBusy naming the holder."""
    me, deadline, told = Holder.me(), time.monotonic() + wait_seconds, False
    while True:
        try:
            with sessions.begin() as session:
                holder = try_take(session, name, me, ttl)
        except IntegrityError:  # another process inserted it first
            holder = "another process that took it at the same moment"
        if holder is None:
            break
        if time.monotonic() >= deadline:
            raise LeaseBusy(f"{name} is held by {holder}; gave up after waiting "
                            f"{wait_seconds:g} s")
        if not told:
            on_wait(holder)
            told = True
        time.sleep(poll_seconds)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(sessions, name, me, stop, ttl / 4),
                               daemon=True, name=f"lease {name}")
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with sessions.begin() as session:
            session.execute(delete(LeaseRow).where(LeaseRow.name == name,
                                                   LeaseRow.pid == me.pid,
                                                   LeaseRow.host == me.host))


def _renew(sessions: sessionmaker, name: str, me: Holder, stop: threading.Event,
           every: float) -> None:
    """Renew until stopped; a busy database only delays a renewal (the lease lasts `ttl`)."""
    while not stop.wait(every):
        try:
            with sessions.begin() as session:
                session.execute(update(LeaseRow).where(
                    LeaseRow.name == name, LeaseRow.pid == me.pid, LeaseRow.host == me.host)
                    .values(renewed_at=datetime.now(UTC)))
        except OperationalError:
            continue
