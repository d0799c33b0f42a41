"""Synthetic motion-keypoint data, the kit's embedded default for the demo, tests and benchmarks:
:mod:`.body` (the person and its motions), :mod:`.render` (drawing) and :mod:`.writer` (the data
set in the competition layout)."""
