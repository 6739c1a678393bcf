"""Leases: one holder at a time for a named piece of work (a station's retrain), kept in the
database itself, so a holder that died never blocks the work.

A holder renews its lease every `ttl` / 6 seconds from a thread of its own, stamped with the
database's clock (hosts' clocks differ). Another process may take the lease over when the
holder is gone (on the same machine, in the same PID namespace: its process no longer
exists, or another process has its number) or has not renewed it for `ttl` seconds, judged
by the database's clock in the taking statement itself. A holder that was frozen past its
`ttl` and lost the lease finds out at its next renewal or, at the latest, when it checks
that it `holds` the lease inside the transaction that writes its results; it then writes
nothing and stops with `LeaseLost`, so two holders never both register. Prefect's global concurrency slots
were used before; a retrain killed with SIGKILL left its slot taken for ever, since the
slot's lease lived in the killed command's own temporary API server.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import psutil
from sqlalchemy import String, delete, func, select, type_coerce, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from registry.db import BUSY_TIMEOUT_MS, Base, UTCDateTime, utc_time

# A holder that has not renewed for this long is taken to be stuck. Well above SQLite's busy
# timeout: a renewal queued behind a long write waits up to that long.
TTL_SECONDS = 2.5 * BUSY_TIMEOUT_MS / 1000
RENEWALS_PER_TTL = 6

log = logging.getLogger(__name__)


class LeaseRow(Base):
    """Who holds the named work now: host, machine (boot and PID namespace: containers may
    share a host name), process id and its start time (which tells a reused process id
    apart), when taken and when last renewed (the database's clock)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    machine: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int]
    process_started: Mapped[float]
    taken_at: Mapped[utc_time]
    renewed_at: Mapped[utc_time]


class LeaseBusy(RuntimeError):
    """The work is held by a live holder, and waiting for it took too long."""


class LeaseLost(RuntimeError):
    """This holder's lease was taken over (it was frozen or could not renew past its ttl):
    its work must be abandoned, nothing written."""


@cache
def this_machine() -> str | None:
    """What tells this machine and PID namespace apart from others with the same host name:
    the kernel's boot id and the PID namespace; None where the system does not say."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    process_started: float
    machine: str | None = None

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time(),
                   this_machine())

    def alive(self) -> bool:
        """False only when this process can tell: the holder ran on this machine, in this
        PID namespace, and its process is gone, a zombie, or another process now has its
        number. Any other holder counts as alive (only its ttl can free the lease)."""
        if self.host != socket.gethostname() or self.machine is None or \
                self.machine != this_machine():
            return True
        try:
            process = psutil.Process(self.pid)
            return (process.status() != psutil.STATUS_ZOMBIE
                    and abs(process.create_time() - self.process_started) < 1)
        except psutil.NoSuchProcess:
            return False

    def owns(self):
        """The SQL condition: the lease row is this holder's."""
        return ((LeaseRow.host == self.host) & (LeaseRow.pid == self.pid)
                & (LeaseRow.process_started == self.process_started))

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def describe(row: LeaseRow) -> str:
    """Who holds a lease, in words."""
    return (f"{Holder(row.host, row.pid, row.process_started)} (since "
            f"{row.taken_at:%Y-%m-%d %H:%M:%S} UTC, renewed {row.renewed_at:%H:%M:%S})")


def database_now(session: Session) -> datetime:
    """The database server's current time (UTC): every lease time is stamped and compared
    with one clock, whichever host wrote it."""
    now = (func.statement_timestamp() if session.get_bind().dialect.name == "postgresql"
           else func.current_timestamp())
    return session.scalar(select(type_coerce(now, UTCDateTime())))


def try_take(session: Session, name: str, me: Holder, ttl: float) -> str | None:
    """Take the lease `name` if it is free, or its holder is dead or has not renewed for
    `ttl` seconds: None when taken, else who holds it. The caller commits; a lost race shows
    up as IntegrityError there or as an update that matched no row (the holder, or its
    renewal, changed: the conditions are checked again by the update itself)."""
    now = database_now(session)
    row = session.get(LeaseRow, name)
    mine = {"host": me.host, "machine": me.machine, "pid": me.pid,
            "process_started": me.process_started, "taken_at": now, "renewed_at": now}
    if row is None:
        session.add(LeaseRow(name=name, **mine))
        return None
    holder = Holder(row.host, row.pid, row.process_started, row.machine)
    condition = holder.owns()
    if holder.alive():
        condition &= LeaseRow.renewed_at < now - timedelta(seconds=ttl)
    taken = session.execute(update(LeaseRow).where(LeaseRow.name == name, condition)
                            .values(**mine).execution_options(synchronize_session=False))
    return None if taken.rowcount == 1 else describe(row)


@dataclass
class Lease:
    """A lease this process holds; `lost` says why it no longer does (None while held)."""

    sessions: sessionmaker
    name: str
    me: Holder
    ttl: float
    lost: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def renew(self, session: Session) -> bool:
        """Stamp the lease renewed now, in `session`'s transaction: False when it is no
        longer this holder's."""
        renewed = session.execute(
            update(LeaseRow).where(LeaseRow.name == self.name, self.me.owns())
            .values(renewed_at=database_now(session))
            .execution_options(synchronize_session=False))
        return renewed.rowcount == 1

    def holds(self, session: Session) -> bool:
        """Renew the lease inside the transaction about to write this holder's results:
        while that transaction is open no one can take the lease over, so the results are
        written only if it is still held. False (and `lost` says why) when it is not; the
        caller then writes nothing and ends with `stop()`."""
        if self.lost is None and not self.renew(session):
            self.lose("another process took it over")
        return self.lost is None

    def stop(self) -> None:
        """Raise LeaseLost if the lease is lost."""
        if self.lost:
            raise LeaseLost(f"{self.name}: lost the lease ({self.lost}); this run's work "
                            "is abandoned, nothing was registered")

    def lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
            log.warning("Lost the lease %s: %s", self.name, why)

    def keep(self) -> None:
        """Renew every ttl / RENEWALS_PER_TTL seconds until released; a renewal that finds
        the lease taken, or none succeeding for a whole ttl, loses it."""
        renewed = time.monotonic()
        while not self._stop.wait(self.ttl / RENEWALS_PER_TTL):
            try:
                with self.sessions.begin() as session:
                    kept = self.renew(session)
            except OperationalError as busy:
                if time.monotonic() - renewed > self.ttl:
                    self.lose(f"no renewal succeeded for {self.ttl:g} s: {busy.orig}")
                    return
                continue
            if not kept:
                self.lose("another process took it over (this one was frozen or could not "
                          f"renew for {self.ttl:g} s)")
                return
            renewed = time.monotonic()


@contextmanager
def held(sessions: sessionmaker, name: str, wait_seconds: float,
         on_wait: Callable[[str], None] = lambda holder: None, ttl: float = TTL_SECONDS,
         poll_seconds: float = 1.0) -> Iterator[Lease]:
    """Hold the lease `name` while the block runs, renewing it from a thread. While another
    live holder has it, wait (calling `on_wait` with who holds it, once) for up to
    `wait_seconds`, then raise LeaseBusy naming the holder. The block writes its results
    only where `lease.holds(session)` in the same transaction."""
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
    lease = Lease(sessions, name, me, ttl)
    renewer = threading.Thread(target=lease.keep, daemon=True, name=f"lease {name}")
    renewer.start()
    try:
        yield lease
    finally:
        lease._stop.set()
        renewer.join()
        with sessions.begin() as session:
            session.execute(delete(LeaseRow).where(LeaseRow.name == name, me.owns()))
