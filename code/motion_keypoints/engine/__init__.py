"""Training pieces every model family shares: the best-checkpoint hook (:mod:`.hooks`), the
experiment-tracking hook (:mod:`.tracking`) and run setup (:mod:`.run`)."""
