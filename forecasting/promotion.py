"""The promotion gate, as a pure function of scores on the same backtest windows."""

from __future__ import annotations

from dataclasses import dataclass

from forecasting.config import ENSEMBLE, FAMILIES
from forecasting.evaluation import Scores


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def decide_promotion(candidate: Scores, naive: Scores, champion: Scores | None,
                     min_improvement: float = 0.0, group_steps: int = 6,
                     step_hours: float = 1.0) -> Decision:
    """Promote only if the candidate beats the best naive forecast on the mean MAE over the
    horizons, at the last horizon (+24 h) and in every group of `group_steps` horizons
    (1-6 h, 7-12 h, ...), and beats the champion, if there is one, on the mean and at the
    last horizon; each by at least `min_improvement` (relative, 0.02 = 2 %). The reasons
    name every comparison that failed, or say that all passed."""
    if candidate.windows != naive.windows or (
            champion is not None and champion.windows != candidate.windows):
        raise ValueError("scores must come from the same holdout windows")
    factor = 1 - min_improvement
    checks = [("mean MAE", candidate.mean, "best naive", naive.mean),
              ("+24 h MAE", candidate.last, "best naive", naive.last)]
    for i, (mine, theirs) in enumerate(zip(candidate.groups(group_steps),
                                           naive.groups(group_steps))):
        first, last = i * group_steps + 1, min((i + 1) * group_steps, len(candidate.mae))
        checks.append((f"{first * step_hours:g}-{last * step_hours:g} h MAE", mine,
                       "best naive", theirs))
    if champion is not None:
        checks += [("mean MAE", candidate.mean, "champion", champion.mean),
                   ("+24 h MAE", candidate.last, "champion", champion.last)]
    failed = [f"{label} {mine:.3f} >= {rival} {theirs:.3f}"
              + (f" x {factor:g}" if min_improvement else "")
              for label, mine, rival, theirs in checks if not mine < theirs * factor]
    if failed:
        return Decision(False, tuple(failed))
    reasons = [f"mean MAE {candidate.mean:.3f} < best naive {naive.mean:.3f}",
               f"+24 h MAE {candidate.last:.3f} < best naive {naive.last:.3f}",
               "every horizon group beats best naive"]
    reasons.append(f"mean MAE < champion {champion.mean:.3f}, +24 h < {champion.last:.3f}"
                   if champion is not None else "no champion yet")
    return Decision(True, tuple(reasons))


def choose_champion(candidates: dict[str, Scores], naive: Scores, champion: Scores | None,
                    min_improvement: float = 0.0, group_steps: int = 6,
                    step_hours: float = 1.0) -> tuple[str | None, str, dict[str, Decision]]:
    """Gate every candidate and pick one of those that pass: (winner or None, why it won
    over the others that passed, every decision in order of mean MAE, best first).

    The ensemble wins when it passes and its mean MAE is within `ENSEMBLE_MARGIN` of the
    best: picking the lowest of near-equal backtest scores picks noise too, and the average
    of the candidates held up better the following month. Otherwise the lowest mean MAE
    wins, except that candidates within `TIE` of it are tied and the simplest of them wins
    (in the order of FAMILIES: a network whose training never beat its ridge base forecasts
    as the ridge does, up to float32 rounding)."""
    order = sorted(candidates, key=lambda name: candidates[name].mean)
    decisions = {name: decide_promotion(candidates[name], naive, champion, min_improvement,
                                        group_steps, step_hours) for name in order}
    passed = [name for name in order if decisions[name].promote]
    if not passed:
        return None, "", decisions
    best = candidates[passed[0]].mean

    def within(name: str, margin: float) -> bool:
        return candidates[name].mean <= best * (1 + margin)

    if ENSEMBLE in passed and within(ENSEMBLE, ENSEMBLE_MARGIN):
        return ENSEMBLE, ("ensemble has the lowest mean MAE" if within(ENSEMBLE, 0) else
                          f"ensemble is within {ENSEMBLE_MARGIN:.0%} of the lowest mean MAE, "
                          "and an average holds up better out of sample"), decisions
    simpler = {family: i for i, family in enumerate(FAMILIES)}
    tied = [name for name in passed if within(name, TIE)]
    winner = min(tied, key=lambda name: simpler.get(name, len(FAMILIES)))
    return winner, (f"{winner} is as good (within {TIE:.1%}) and simpler" if len(tied) > 1
                    else f"{winner} has the lowest mean MAE"), decisions


ENSEMBLE_MARGIN = 0.03  # relative excess of mean MAE within which the ensemble is preferred
TIE = 1e-3  # relative difference of mean MAE below which two candidates are equally good
