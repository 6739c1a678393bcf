"""The promotion gate, as a pure function of scores on the same holdout windows."""

from __future__ import annotations

from dataclasses import dataclass

from forecasting.evaluation import Scores


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def decide_promotion(candidate: Scores, baseline: Scores, champion: Scores | None,
                     min_improvement: float = 0.0) -> Decision:
    """Promote only if the candidate beats persistence, and the champion if there is one,
    on both the mean MAE over the horizons and the MAE at the last horizon (+24 h),
    each by at least `min_improvement` (relative, 0.02 = 2 %)."""
    if candidate.windows != baseline.windows or (
            champion is not None and champion.windows != candidate.windows):
        raise ValueError("scores must come from the same holdout windows")
    reasons, promote = [], True
    rivals = [("persistence", baseline)] + ([("champion", champion)] if champion else [])
    for rival_name, rival in rivals:
        for label, mine, theirs in (("mean MAE", candidate.mean, rival.mean),
                                    ("+24 h MAE", candidate.last, rival.last)):
            limit = theirs * (1 - min_improvement)
            ok = mine < limit
            promote &= ok
            reasons.append(f"{label} {mine:.3f} {'<' if ok else '>='} {rival_name} "
                           f"{theirs:.3f}" + (f" x {1 - min_improvement:g}"
                                              if min_improvement else ""))
    if champion is None:
        reasons.append("no champion yet")
    return Decision(promote, tuple(reasons))
