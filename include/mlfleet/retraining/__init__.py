"""Drift-triggered retraining: the champion's spec as a Bayesian search, then challenger vs champion."""

from mlfleet.retraining.challenger import decide, prepare
from mlfleet.retraining.search_space import bayes_spec

__all__ = ["bayes_spec", "decide", "prepare"]
