"""Scoring: the competition metric and the one mean pose (:mod:`.metrics`), and predictions
files against labels (:mod:`.evaluate`)."""
