"""A SIGTERM whose exception Python swallows (it landed in a finalizer) still stops."""

import signal
import subprocess
import sys
import textwrap

STEPS = textwrap.dedent("""
    import os, signal, sys
    from prefect.utilities.engine import capture_sigterm
    from flows import sigterm

    class Finalized:
        def __del__(self):  # the SIGTERM's handler runs in here
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))

    def stopped(signum, frame):  # the CLI's handler, as Prefect restores it
        print("stopped", flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    if sys.argv[1] == "watched":
        sigterm.watch()
    with capture_sigterm():  # Prefect's handler, as during a flow run
        for step in range(3):
            Finalized()
            sigterm.stop_if_received()
            print("step", step, "went on", flush=True)
""")


def run_steps(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True,
                          text=True, timeout=120)


def test_a_sigterm_swallowed_in_a_finalizer_stops_the_loop_at_its_next_step_silently():
    unwatched = run_steps("unwatched")  # what the backtest did: it ran on to its end
    assert unwatched.returncode == 0 and unwatched.stdout.count("went on") == 3
    assert "Exception ignored" in unwatched.stderr
    watched = run_steps("watched")
    assert watched.returncode == 128 + signal.SIGTERM, watched
    assert watched.stdout == "stopped\n" and watched.stderr == "", watched
