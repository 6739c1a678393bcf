"""The promotion gate, as pure functions of errors and scores on the same backtest windows.

A promotion is a promise that the forecast beats the best naive forecast next month. So the
promoted forecast is each candidate combined with best naive per horizon step, with the weight
the backtest supports there (shrunk towards best naive where the evidence is thin:
`combination_weights`), and that combination is trusted only in the horizon groups where its
win is consistent (fold by fold, and by a paired test on the per-window errors); in the other
groups it is best naive's own forecast (`plan_composition`). The composed forecast must then
still beat best naive on the mean and the champion (`choose_champion`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from forecasting.config import COMPOSED, ENSEMBLE, FAMILIES, ForecastParams
from forecasting.scoring.backtest import Backtest, Scores


@dataclass(frozen=True)
class GroupEvidence:
    """How a candidate, combined with best naive, did against best naive in one horizon
    group on the backtest."""

    label: str  # "1-6 h"
    weight: float  # the candidate's mean weight in the group's combination with best naive
    ratio: float  # pooled MAE / best naive's
    fold_ratios: tuple[float, ...]
    statistic: float  # paired test on the per-window error difference (negative: better)
    critical: float  # the statistic must be below minus this (inf: too little evidence)
    trusted: bool

    def __str__(self) -> str:
        folds = "/".join(f"{r:.2f}" for r in self.fold_ratios)
        return (f"{self.label} {self.ratio:.3f} (weight {self.weight:.2f}, folds {folds}, "
                f"t {self.statistic:.1f} vs -{self.critical:.1f})")


@dataclass(frozen=True)
class Composition:
    """The candidate's weight against best naive at each horizon step (1: its own forecast,
    0: best naive's), the weights each fold was scored with (fitted on the other folds), and
    the evidence for each group."""

    weights: np.ndarray  # one per horizon step, 0 in the groups it is not trusted in
    fold_weights: list[np.ndarray]
    evidence: tuple[GroupEvidence, ...]

    @property
    def naive_groups(self) -> frozenset[int]:
        return frozenset(i for i, e in enumerate(self.evidence) if not e.trusted)

    @property
    def composed(self) -> bool:
        """Whether the forecast differs from the candidate's own anywhere."""
        return bool(np.any(self.weights < 1))

    @property
    def weighting(self) -> str:
        """The candidate's weight by group in words: "weight 0.97 at 1-6 h, ..., best naive
        at 19-24 h"."""
        return ", ".join(f"weight {e.weight:.2f} at {e.label}" if e.trusted
                         else f"best naive at {e.label}" for e in self.evidence)

    @property
    def summary(self) -> str:
        """The evidence in words, for the decision's record."""
        kept = [e.label for e in self.evidence if not e.trusted]
        return ("; ".join(map(str, self.evidence))
                + (f"; best naive at {', '.join(kept)}" if kept else ""))


FOLDS_PER_LOSS = 6  # a group may be lost in one fold in six and still be trusted


def newey_west(scores: np.ndarray, lag: int) -> np.ndarray:
    """Long-run variance of each column of `scores` (Bartlett weights up to `lag`), since
    the errors of overlapping forecasts and of the same weather spell are not independent."""
    s = np.asarray(scores, np.float64)
    n = len(s)
    centred = s - s.mean(axis=0)
    variance = (centred * centred).sum(axis=0) / n
    for k in range(1, min(lag, n - 1) + 1):
        variance += 2 * (1 - k / (lag + 1)) * (centred[k:] * centred[:-k]).sum(axis=0) / n
    return variance


@dataclass(frozen=True)
class PairedTest:
    """A paired test's statistic (the mean loss difference over its standard error;
    negative: the candidate's errors are smaller) and the value it must fall below to be
    trusted (inf: too little independent evidence to judge)."""

    statistic: float
    critical: float

    @property
    def significant(self) -> bool:
        return self.statistic < -self.critical


MAX_AUTOCORRELATION = 0.995
MIN_EFFECTIVE_WINDOWS = 3.0  # fewer independent windows than this are no evidence


def paired_test(difference: np.ndarray, lag: int, confidence: float = 0.95,
                folds: list[int] | None = None) -> PairedTest:
    """Is the mean of a loss difference series below zero beyond chance, at `confidence`
    (one-sided)? The errors of overlapping forecasts and of one weather spell are not
    independent, and a short series hides how dependent they are, so the test is sized for
    that: the variance of the differences is inflated by the larger of the AR(1) factor
    (1 + r) / (1 - r), with the lag-1 autocorrelation r corrected for its small-sample bias
    and taken at its upper confidence bound, and the Newey-West factor up to `lag` (the
    windows a forecast overlaps); the statistic is judged on a Student t whose degrees of
    freedom are the effective number of independent windows less one. With `folds` (the
    lengths of the consecutive stretches the series is made of, apart in time) the
    dependence is measured within each stretch only. Its false-trust rate stays at or below
    the nominal rate for 5 to 1,000 windows and AR(1) errors up to 0.95
    (`tests/test_promotion_gate.py`, `bench/gate_size.py`). A series without spread, or
    of too few effective windows, is no evidence."""
    from scipy.stats import t as student_t  # only when judging: importing it costs 0.5 s

    d = np.asarray(difference, np.float64)
    n = len(d)
    stretches = np.split(d, np.cumsum(folds or [n])[:-1])
    within = [s - s.mean() for s in stretches if len(s)]
    spread = float(sum(w @ w for w in within))
    total = float(((d - d.mean()) ** 2).sum()) / max(n - 1, 1)
    if n < 3 or spread <= 0:
        return PairedTest(0.0, np.inf)
    rho = float(sum(w[1:] @ w[:-1] for w in within)) / spread
    rho += (1 + 3 * rho) / n  # Kendall's bias of the estimate
    rho += NormalDist().inv_cdf(confidence) * np.sqrt(max(1 - rho * rho, 0.0) / n)
    rho = min(max(rho, 0.0), MAX_AUTOCORRELATION)
    overlap = sum(float(newey_west(w[:, None], lag)[0]) * len(w) for w in within) / spread
    inflation = max((1 + rho) / (1 - rho), overlap)
    statistic = float(d.mean() / np.sqrt(total * inflation / n))
    effective = n / inflation
    if effective < MIN_EFFECTIVE_WINDOWS:
        return PairedTest(statistic, np.inf)
    return PairedTest(statistic, float(student_t.ppf(confidence, effective - 1)))


def combination_weights(candidate: list[np.ndarray], naive: list[np.ndarray], lag: int,
                        confidence: float = 0.95) -> np.ndarray:
    """Per horizon step, the weight w of the candidate in best naive + w (candidate − best
    naive) that minimises the squared error over the given folds' windows (the residuals
    `candidate` and `naive`, actual − forecast, (windows, horizon) per fold). A forecast is
    mixed only on evidence: w is 1 (the candidate's own forecast) unless it is below 1 at
    `confidence` (one-sided, for all the steps together: Bonferroni), and otherwise kept
    within [0, 1] and shrunk towards 0 by its own uncertainty, times (1 − 1/t²)+; t and the
    test use its autocorrelation-robust standard error. Where the evidence against the
    candidate is thin, the candidate's own forecast is kept (w = 1): whether to trust it in
    a horizon group at all was decided before, by the paired test."""
    mine, theirs = np.concatenate(candidate), np.concatenate(naive)
    spread = theirs - mine  # the candidate's forecast minus best naive's
    power = (spread * spread).sum(axis=0)
    if not np.any(power > 0):
        return np.ones(mine.shape[1])  # the candidate is best naive
    weight = np.divide((theirs * spread).sum(axis=0), power, out=np.ones_like(power),
                       where=power > 0)
    moments = spread * (theirs - weight * spread)  # zero on average at the fitted weight
    error = np.sqrt(len(mine) * newey_west(moments, lag)) / np.where(power > 0, power, 1)
    critical = NormalDist().inv_cdf(1 - (1 - confidence) / len(weight))
    below_one = (1 - weight) > critical * error
    t_squared = np.divide(weight * weight, error * error, out=np.full_like(weight, np.inf),
                          where=error > 0)
    shrunk = np.clip(weight, 0, 1) * np.clip(1 - 1 / t_squared, 0, 1)
    return np.where(below_one, shrunk, 1.0)


def plan_composition(candidate: list[np.ndarray], naive: list[np.ndarray], group_steps: int,
                     lag: int, confidence: float = 0.95, step_hours: float = 1.0,
                     min_windows: int = 1) -> Composition:
    """Combine the candidate with best naive at the weights `combination_weights` gives,
    and trust the combination in a horizon group only if the paired test says its errors
    there are smaller than best naive's at `confidence` (`paired_test`), every fold holds at
    least `min_windows` windows, and it won the group in every fold but at most one in six
    (all of three): a win carried by one lucky stretch of weather is no promise. In the last
    group it must also win at the last horizon. Each fold is scored out of sample: with the
    weights fitted on the other folds, and best naive's forecast in the groups the other
    folds do not trust it in (a single fold: nowhere). The weights to forecast with, and the
    evidence reported, are decided on all folds. `candidate` and `naive` are the residuals
    (windows, horizon) of each fold, in time order."""
    everyone = range(len(candidate))
    fold_weights = [combination_weights([candidate[j] for j in everyone if j != k] or
                                        [candidate[k]],
                                        [naive[j] for j in everyone if j != k] or [naive[k]],
                                        lag, confidence) for k in everyone]
    blended = [np.abs(n + w * (c - n))
               for c, n, w in zip(candidate, naive, fold_weights, strict=True)]
    baseline = [np.abs(n) for n in naive]
    horizon = blended[0].shape[1]

    allowed = len(candidate) // FOLDS_PER_LOSS  # lost folds, of the whole backtest

    def judged(folds: list[int]) -> list[GroupEvidence]:
        return [group_evidence([blended[k] for k in folds], [baseline[k] for k in folds],
                               start, min(start + group_steps, horizon), horizon, lag,
                               confidence, step_hours, min_windows, allowed)
                for start in range(0, horizon, group_steps)]

    evidence = judged(list(everyone))
    weights = combination_weights(candidate, naive, lag, confidence)
    for k in everyone:
        others = [j for j in everyone if j != k]
        for start, e in zip(range(0, horizon, group_steps), judged(others) if others else
                            [None] * len(evidence)):
            if e is None or not e.trusted:
                fold_weights[k][start:start + group_steps] = 0
    evidence = tuple(replace(e, weight=float(weights[start:start + group_steps].mean()))
                     for start, e in zip(range(0, horizon, group_steps), evidence))
    for start, e in zip(range(0, horizon, group_steps), evidence):
        if not e.trusted:
            weights[start:start + group_steps] = 0
    return Composition(weights, fold_weights, evidence)


def group_evidence(blended: list[np.ndarray], baseline: list[np.ndarray], start: int,
                   stop: int, horizon: int, lag: int, confidence: float, step_hours: float,
                   min_windows: int, allowed_losses: int) -> GroupEvidence:
    """How the combination did against best naive in the horizon steps start..stop-1 of the
    given folds' absolute errors (windows, horizon), and whether that is trusted (at most
    `allowed_losses` of the folds lost)."""
    group = slice(start, stop)
    label = f"{(start + 1) * step_hours:g}-{stop * step_hours:g} h"
    mine, theirs = np.concatenate(blended), np.concatenate(baseline)
    folds = tuple(float(c[:, group].mean() / n[:, group].mean())
                  for c, n in zip(blended, baseline, strict=True))
    test = paired_test(mine[:, group].mean(axis=1) - theirs[:, group].mean(axis=1), lag,
                       confidence, [len(c) for c in blended])
    lost = sum(r >= 1 for r in folds)
    trusted = (test.significant and lost <= allowed_losses
               and min(len(c) for c in blended) >= min_windows)
    if stop == horizon:
        trusted = trusted and mine[:, -1].mean() < theirs[:, -1].mean()
    return GroupEvidence(label, 1.0, float(mine[:, group].mean() / theirs[:, group].mean()),
                         folds, test.statistic, test.critical, trusted)


def compose_candidates(backtest: Backtest, families: tuple[str, ...], params: ForecastParams
                       ) -> dict[str, Composition]:
    """For each candidate, its combination with best naive and the horizon groups where its
    backtest win over best naive was consistent (`plan_composition`); each candidate's
    composed forecast is scored into `backtest` as `composed:<family>` (each fold with the
    weights fitted on the others), which is what the gate judges."""
    plans = {}
    for family in families:
        folds = backtest.folds_of(family)
        plans[family] = plan_composition(
            [backtest.fold_residuals[family][k] for k in folds],
            [backtest.fold_residuals["best_naive"][k] for k in folds],
            params.group_steps, params.overlap_windows, params.gate_confidence,
            params.step_minutes / 60, params.scored_per_day)
        backtest.compose(f"{COMPOSED}:{family}", family,
                         dict(zip(folds, plans[family].fold_weights, strict=True)))
    return plans


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome on a backtest: the winner (or None) and why, every candidate's
    decision and composition, and the scores it was ranked and compared with the champion
    on (the folds all candidates share; of those, the ones the champion was scored on)."""

    winner: str | None
    why: str
    decisions: dict[str, Decision]
    plans: dict[str, Composition]
    ranking: dict[str, Scores]
    champion_folds: list[int]


def gate_backtest(backtest: Backtest, families: tuple[str, ...], params: ForecastParams,
                  champion: dict[int, Scores] | None = None) -> Verdict:
    """Gate every candidate, composed with best naive where its win was not consistent,
    against best naive on every fold it was scored at; rank those that pass, and compare
    them with the champion (its scores by fold), on the folds they all share."""
    plans = compose_candidates(backtest, families, params)
    entry = {f: f"{COMPOSED}:{f}" for f in families}
    shared = sorted(set.intersection(*(set(backtest.folds_of(f)) for f in families)))
    judged = {f: (backtest.scores(entry[f]),
                  backtest.scores("best_naive", backtest.folds_of(entry[f])))
              for f in families}
    ranking = {f: backtest.scores(entry[f], shared) for f in families}
    there = [k for k in shared if k in (champion or {})]
    winner, why, decisions = choose_champion(
        ranking, backtest.scores("best_naive", shared),
        Scores.combine([champion[k] for k in there]) if there else None,
        params.min_improvement, params.group_steps, params.step_minutes / 60,
        {f: plans[f].naive_groups for f in families},
        {f: backtest.scores(entry[f], there) for f in families} if there else None, judged)
    return Verdict(winner, why, decisions, plans, ranking, there)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def decide_promotion(candidate: Scores, naive: Scores, champion: Scores | None,
                     min_improvement: float = 0.0, group_steps: int = 6,
                     step_hours: float = 1.0, naive_groups: frozenset[int] = frozenset(),
                     versus_champion: Scores | None = None) -> Decision:
    """Promote only if the candidate beats the best naive forecast on the mean MAE over the
    horizons, at the last horizon (+24 h) and in every group of `group_steps` horizons
    (1-6 h, 7-12 h, ...), except the `naive_groups` where it is best naive's own forecast;
    and beats the champion, if there is one, on the mean and at the last horizon (not worse
    there when that is best naive's), compared on the champion's windows
    (`versus_champion`: the candidate's scores on them; default: the same as `candidate`);
    each by at least `min_improvement` (relative, 0.02 = 2 %). The reasons name every
    comparison that failed, or say that all passed."""
    mine_there = versus_champion or candidate
    if candidate.windows != naive.windows or (
            champion is not None and champion.windows != mine_there.windows):
        raise ValueError("scores must come from the same holdout windows")
    factor = 1 - min_improvement
    groups = len(candidate.groups(group_steps))
    if len(naive_groups) >= groups:
        return Decision(False, ("no horizon group beat best naive consistently (fold by fold "
                                "and by the paired test)",))
    naive_last = groups - 1 in naive_groups
    checks = [("mean MAE", candidate.mean, "best naive", naive.mean, False),
              ("+24 h MAE", candidate.last, "best naive", naive.last, naive_last)]
    for i, (mine, theirs) in enumerate(zip(candidate.groups(group_steps),
                                           naive.groups(group_steps))):
        first, last = i * group_steps + 1, min((i + 1) * group_steps, len(candidate.mae))
        checks.append((f"{first * step_hours:g}-{last * step_hours:g} h MAE", mine,
                       "best naive", theirs, i in naive_groups))
    if champion is not None:
        checks += [("mean MAE", mine_there.mean, "champion", champion.mean, False),
                   ("+24 h MAE", mine_there.last, "champion", champion.last, naive_last)]
    failed = [f"{label} {mine:.3f} {'>' if equal_ok else '>='} {rival} {theirs:.3f}"
              + (f" x {factor:g}" if min_improvement and not equal_ok else "")
              for label, mine, rival, theirs, equal_ok in checks
              if not (mine <= theirs if equal_ok else mine < theirs * factor)]
    if failed:
        return Decision(False, tuple(failed))
    reasons = [f"mean MAE {candidate.mean:.3f} < best naive {naive.mean:.3f}",
               f"+24 h MAE {candidate.last:.3f} "
               f"{'= best naive' if naive_last else '< best naive'} {naive.last:.3f}",
               "every horizon group beats best naive" if not naive_groups else
               f"{groups - len(naive_groups)} of {groups} horizon groups beat best naive, "
               "best naive's own forecast in the others"]
    reasons.append(f"mean MAE {mine_there.mean:.3f} < champion {champion.mean:.3f}, +24 h "
                   f"{mine_there.last:.3f} {'<=' if naive_last else '<'} {champion.last:.3f}"
                   if champion is not None else "no champion yet")
    return Decision(True, tuple(reasons))


def choose_champion(candidates: dict[str, Scores], naive: Scores, champion: Scores | None,
                    min_improvement: float = 0.0, group_steps: int = 6,
                    step_hours: float = 1.0,
                    naive_groups: dict[str, frozenset[int]] | None = None,
                    versus_champion: dict[str, Scores] | None = None,
                    judged: dict[str, tuple[Scores, Scores]] | None = None
                    ) -> tuple[str | None, str, dict[str, Decision]]:
    """Gate every candidate and pick one of those that pass: (winner or None, why it won
    over the others that passed, every decision in order of mean MAE, best first).

    The ensemble wins when it passes and its mean MAE is within `ENSEMBLE_MARGIN` of the
    best: picking the lowest of near-equal backtest scores picks noise too, and the average
    of the candidates held up better the following month. Otherwise the lowest mean MAE
    wins, except that candidates within `TIE` of it are tied and the simplest of them wins
    (in the order of FAMILIES: a network whose training never beat its ridge base forecasts
    as the ridge does, up to float32 rounding). `naive_groups` and `versus_champion` are
    each candidate's, as decide_promotion takes them; `judged` gives a candidate's scores
    and best naive's on more windows than the ones all candidates share (a linear model is
    backtested on more folds than a network), which the gate then judges it on."""
    order = sorted(candidates, key=lambda name: candidates[name].mean)
    naive_groups, versus_champion = naive_groups or {}, versus_champion or {}
    judged = judged or {}
    decisions = {name: decide_promotion(*judged.get(name, (candidates[name], naive)), champion,
                                        min_improvement, group_steps, step_hours,
                                        naive_groups.get(name, frozenset()),
                                        versus_champion.get(name, candidates[name]))
                 for name in order}
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
