"""benchmarks/gpu.py --dry-run in the fast tier (in-process, CPU, tiny configs), so the GPU check
is known to run the day a GPU is lent. Its figures are printed, never asserted."""

import re
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_gpu_check_dry_run_runs_every_section(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for name in ("gpu", "predict", "two_stage", "train_step", "_common"):
        sys.modules.pop(name, None)
    import gpu

    assert gpu.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN" in out
    for family, config in (("rcnn", "tiny-cpu.yaml"), ("heatmap", "tiny-hrnet.yaml")):
        assert re.search(rf"^{family} +{config}: AMP off +\d+\.\d+ it/s .*peak memory [\d,]+ MiB",
                         out, re.M), out
    assert re.search(r"^ratio kit/reference images/s: \d+\.\d+x", out, re.M), out
    assert re.search(r"^ratio two-stage/r-cnn images/s: \d+\.\d+x", out, re.M), out
    assert re.search(r"^gpu check done in \d+s", out, re.M), out
