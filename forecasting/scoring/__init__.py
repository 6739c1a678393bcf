"""Judging forecasts: the rolling-origin backtest, the promotion gate, prediction
intervals, and the monitor of verified skill."""
