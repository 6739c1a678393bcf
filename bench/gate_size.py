"""The promotion gate's paired test on loss differences with no real difference: how often
it trusts a candidate (its false-trust rate), by number of windows and AR(1)
autocorrelation of the errors, against its nominal 5 %.

    .venv/bin/python bench/gate_size.py [--reps 4000]

`before` is the test the gate used at the start of issue 35 (Diebold-Mariano with a
Newey-West variance up to lag 24, normal critical value), re-implemented here as it was;
`now` is `forecasting.scoring.gate.paired_test`. The Monte-Carlo standard error of a rate
near 5 % is sqrt(0.05 x 0.95 / reps), 0.34 points at 4,000.
"""

from __future__ import annotations

import argparse
from statistics import NormalDist

import numpy as np

from forecasting.scoring.gate import newey_west, paired_test

WINDOWS = (5, 20, 48, 168, 504)
AUTOCORRELATIONS = (0.0, 0.5, 0.9, 0.95)


def before(difference: np.ndarray, lag: int = 24, confidence: float = 0.95) -> bool:
    """The test at issue 35's start: trusted when DM < -z (zero variance: -inf, trusted)."""
    variance = float(newey_west(difference[:, None], lag)[0])
    mean = difference.mean()
    if variance <= 0:
        return mean < 0
    return mean / np.sqrt(variance / len(difference)) < -NormalDist().inv_cdf(confidence)


def series(rng: np.random.Generator, reps: int, windows: int, rho: float) -> np.ndarray:
    shocks = rng.standard_normal((reps, windows))
    out = np.empty_like(shocks)
    out[:, 0] = shocks[:, 0] / np.sqrt(1 - rho * rho)
    for t in range(1, windows):
        out[:, t] = rho * out[:, t - 1] + shocks[:, t]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| windows | " + " | ".join(f"AR {r:g}: before / now" for r in AUTOCORRELATIONS)
          + " |")
    print("|---" * (len(AUTOCORRELATIONS) + 1) + "|")
    for windows in WINDOWS:
        cells = []
        for rho in AUTOCORRELATIONS:
            draws = series(rng, args.reps, windows, rho)
            old = np.mean([before(d) for d in draws])
            new = np.mean([paired_test(d, 24).significant for d in draws])
            cells.append(f"{old:.1%} / {new:.1%}")
        print(f"| {windows} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
