"""The promotion gate: beat persistence and the champion, on mean and +24 h MAE."""

from __future__ import annotations

import pytest

from forecasting.evaluation import Scores
from forecasting.promotion import decide_promotion


def s(mean_part: float, last: float, windows: int = 100) -> Scores:
    return Scores((mean_part, last), windows)


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "phrase"),
    [
        (s(1.0, 1.5), None, True, "no champion yet"),
        (s(2.5, 1.5), None, False, "mean MAE 2.000 >= persistence"),   # mean worse
        (s(1.0, 2.5), None, False, "+24 h MAE 2.500 >= persistence"),  # +24 h worse
        (s(2.0, 2.0), None, False, ">= persistence"),                  # a tie is not a win
        (s(1.0, 1.5), s(0.9, 1.4), False, ">= champion"),               # champion stays
        (s(0.8, 1.3), s(0.9, 1.4), True, "< champion"),
    ],
    ids=["beats-persistence", "mean-worse", "last-worse", "tie", "champion-better",
         "beats-both"],
)
def test_gate(candidate, champion, promote, phrase):
    decision = decide_promotion(candidate, s(2.0, 2.0), champion)
    assert decision.promote is promote
    assert phrase in decision.reason


def test_minimum_improvement_is_required_against_each_rival():
    assert decide_promotion(s(1.9, 1.9), s(2.0, 2.0), None).promote
    assert not decide_promotion(s(1.9, 1.9), s(2.0, 2.0), None, min_improvement=0.1).promote
    assert decide_promotion(s(1.7, 1.7), s(2.0, 2.0), None, min_improvement=0.1).promote


def test_scores_from_different_windows_are_refused():
    with pytest.raises(ValueError, match="same holdout windows"):
        decide_promotion(s(1.0, 1.0, windows=10), s(2.0, 2.0, windows=11), None)
