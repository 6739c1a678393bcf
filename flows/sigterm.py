"""A SIGTERM that is never lost.

During a flow run Prefect's SIGTERM handler raises `TerminationSignal` in the main thread,
wherever it happens to be. When that is inside a `__del__` (a garbage collection: Keras and
TensorFlow make many), Python prints the exception as "ignored" and carries on, and a
backtest stopped by its service manager ran on to its end. So the CLI notes such a
swallowed stop (`watch`: Python hands every exception it cannot raise to
`sys.unraisablehook`), and long loops call `stop_if_received` between their steps, which
raises the same `TerminationSignal` there: Prefect records the run as crashed and the CLI's
own handler ends the command, as when the handler's exception gets through. Prefect is
imported only when needed: the CLI sets Prefect's environment before it is first imported."""

from __future__ import annotations

import signal
import sys

_received = False


def watch() -> None:
    """From now on a `TerminationSignal` that Python could not raise is noted (silently:
    the command says it stopped), every other unraisable exception reported as before."""
    if getattr(sys.unraisablehook, "notes_sigterm", False):
        return
    report = sys.unraisablehook

    def note(unraisable) -> None:
        global _received
        from prefect.exceptions import TerminationSignal

        if isinstance(unraisable.exc_value, TerminationSignal):
            _received = True
        else:
            report(unraisable)

    note.notes_sigterm = True
    sys.unraisablehook = note


def stop_if_received() -> None:
    """Raise `TerminationSignal` where it can be raised when one was swallowed."""
    if _received:
        from prefect.exceptions import TerminationSignal

        raise TerminationSignal(signal=signal.SIGTERM)
