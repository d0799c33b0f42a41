"""The whole pipeline in one command, on the kit's synthetic data (``make demo``).

Each stage runs the user command (``python -m motion_keypoints.cli.<stage> ...``, what
``python code/<stage>.py`` runs) in a subprocess from the current folder, so the demo exercises
exactly the README's real workflow: synthetic data -> check -> augmentation
sets -> one tiny-cpu Keypoint R-CNN per set -> prediction with flip TTA -> one tiny HRNet heatmap
model (configs/tiny-hrnet.yaml) on the first set, predicting on the first R-CNN's person boxes
(``--boxes-from``) -> ensemble of both families -> submission.csv.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Sequence

from ..errors import UserError
from ._run import run_command


class StageError(UserError, RuntimeError):
    pass


def _run(stage: str, args: List[str], log: Path) -> float:
    """Run ``python -m motion_keypoints.cli.<stage> args`` (= ``python code/<stage>.py args``) in
    the current folder; its output goes to the terminal and to ``log``."""
    cmd = [sys.executable, "-m", f"motion_keypoints.cli.{stage}", *args]
    print(f"\n==> {stage}: python code/{stage}.py {shlex.join(args)}", flush=True)
    t0 = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            if not line.startswith("[") or " d2." not in line:  # keep detectron2's chatter in the log
                sys.stdout.write(line)
        rc = proc.wait()
    if rc != 0:
        raise StageError(f"stage {stage} failed (exit {rc}); see {log}")
    return time.perf_counter() - t0


def run_demo(
    out: Path = Path("outputs/demo"),
    n_train: int = 400,
    n_test: int = 40,
    width: int = 384,
    height: int = 216,
    sets: Sequence[str] = ("demo", "demo_crop"),
    config: str = "configs/tiny-cpu.yaml",
    iters: int = 400,
    seed: int = 0,
    submission: Path = Path("submissions/submission.csv"),
    extra_opts: Sequence[str] = (),
    heatmap_config: str = "configs/tiny-hrnet.yaml",
    heatmap_iters: int = 0,
) -> dict:
    """Run every stage; returns paths and timings. ``heatmap_config`` "" leaves the heatmap
    family out; ``heatmap_iters`` 0 = half of ``iters`` (tiny-hrnet: ~0.4 s CPU per iteration,
    less than one R-CNN model); ``extra_opts`` go to the R-CNN trainings only."""
    from ..models.rcnn.config import schedule_opts

    for option, file in (("--config-file", config), ("--heatmap-config-file", heatmap_config)):
        if file and not Path(file).is_file():
            raise StageError(
                f"config file {file} not found in {Path.cwd()}: run the demo from the repository "
                f"root (make demo) or pass {option}"
            )
    if not sets:
        raise StageError("--sets is empty: give at least one augmentation set (e.g. demo)")
    heatmap_iters = heatmap_iters or max(iters // 2, 1)
    from ..io.guards import check_output, check_writable_dir, check_writable_file

    out = Path(out)
    data = out / "synthetic"
    # before any work: the demo's folder and the submission are writable and no input
    check_writable_dir(out, option="--out")
    check_output(submission, data_root=data, option="--submission")
    check_writable_file(submission, option="--submission")
    t0 = time.perf_counter()
    augmented = out / "augmented"
    log = out / "demo.log"
    times = {}
    times["synthetic"] = _run(
        "make_synthetic",
        ["--out", str(data), "--train", str(n_train), "--test", str(n_test),
         "--width", str(width), "--height", str(height), "--seed", str(seed),
         "--cameras-per-clip", "2", "--frames-per-camera", "1"],
        log,
    )
    times["check"] = _run("check_data", ["--data-root", str(data)], log)
    times["augmentation"] = _run(
        "augmentation", ["--data-root", str(data), "--out", str(augmented), "--sets", ",".join(sets)], log
    )
    runs = []
    for name in sets:
        run = out / "runs" / name
        opts = [
            "DATA.ROOT", str(data), "DATA.AUGMENTED_DIR", str(augmented), "DATA.AUG_SET", name,
            "OUTPUT_DIR", str(run), *schedule_opts(iters), *extra_opts,
        ]
        resume = ["--resume"] if (run / "last_checkpoint").is_file() else []
        times[f"train {name}"] = _run("train", ["--config-file", config, *resume, *opts], log)
        runs.append(run)
    for run in runs:
        for split in ("val", "test"):
            times[f"predict {run.name} {split}"] = _run(
                "predict", ["--run", str(run), "--data-root", str(data), "--split", split, "--flip-tta"], log
            )
    if heatmap_config:
        # Seed 000's two stages: a heatmap model on the first set, fed by the first R-CNN's boxes
        boxes_run, name = runs[0], sets[0]
        run = out / "runs" / f"hrnet_{name}"
        opts = [
            "DATA.ROOT", str(data), "DATA.AUGMENTED_DIR", str(augmented), "DATA.AUG_SET", name,
            "OUTPUT_DIR", str(run), *schedule_opts(heatmap_iters),
        ]
        resume = ["--resume"] if (run / "last_checkpoint").is_file() else []
        times[f"train {run.name}"] = _run("train", ["--config-file", heatmap_config, *resume, *opts], log)
        for split in ("val", "test"):
            times[f"predict {run.name} {split}"] = _run(
                "predict", ["--run", str(run), "--data-root", str(data), "--split", split,
                            "--flip-tta", "--boxes-from", str(boxes_run)], log,
            )
        runs.append(run)
    run_args = [str(r) for r in runs]
    times["ensemble val"] = _run(
        "ensemble", ["--runs", *run_args, "--data-root", str(data), "--split", "val",
                     "--out", str(out / "ensemble" / "predictions_val.csv")], log,
    )
    times["ensemble test"] = _run(
        "ensemble", ["--runs", *run_args, "--data-root", str(data), "--split", "test",
                     "--out", str(submission)], log,
    )
    times["check submission"] = _run(
        "check_submission", ["--data-root", str(data), str(submission)], log
    )
    total = time.perf_counter() - t0
    samples = Path(submission).parent / "samples"
    slowest = sorted(times.items(), key=lambda kv: -kv[1])
    print("\nstage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in slowest))
    print(
        f"\ndemo done in {total / 60:.1f} min: {len(runs)} models ({', '.join(r.name for r in runs)}), "
        f"submission {submission}, pictures in {samples} and {out}/runs/*/samples, log {log}"
    )
    return {"submission": Path(submission), "runs": runs, "data": data, "seconds": total, "times": times}


def _main(argv) -> int:
    p = argparse.ArgumentParser(
        allow_abbrev=False, prog="demo.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="outputs/demo", metavar="DIR",
                   help="working folder of the demo (a folder; default: %(default)s)")
    p.add_argument("--train", type=int, default=400,
                   help="synthetic training images (default: %(default)s)")
    p.add_argument("--test", type=int, default=40,
                   help="synthetic test images (default: %(default)s)")
    p.add_argument("--width", type=int, default=384,
                   help="synthetic image width (default: %(default)s)")
    p.add_argument("--height", type=int, default=216,
                   help="synthetic image height (default: %(default)s)")
    p.add_argument("--sets", default="demo,demo_crop",
                   help="augmentation sets, one model each (default: %(default)s)")
    p.add_argument("--config-file", default="configs/tiny-cpu.yaml", metavar="FILE",
                   help="training config of every Keypoint R-CNN model (default: %(default)s)")
    p.add_argument("--iters", type=int, default=400,
                   help="training iterations per Keypoint R-CNN model (default: %(default)s)")
    p.add_argument("--heatmap-config-file", default="configs/tiny-hrnet.yaml", metavar="FILE",
                   help="training config of the heatmap model, trained on the first set and "
                        "predicted on the first R-CNN's boxes; '' = no heatmap model "
                        "(default: %(default)s)")
    p.add_argument("--heatmap-iters", type=int, default=0,
                   help="training iterations of the heatmap model; 0 = half of --iters "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the synthetic data (default: %(default)s)")
    p.add_argument("--submission", default="submissions/submission.csv", metavar="FILE",
                   help="the submission to write (a file; default: %(default)s)")
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="extra config overrides KEY VALUE ... (default: none)")
    a = p.parse_args(argv)
    if a.iters < 1 or a.heatmap_iters < 0:
        p.error("--iters must be at least 1 and --heatmap-iters 0 (auto) or more")
    run_demo(
        Path(a.out), a.train, a.test, a.width, a.height, [s for s in a.sets.split(",") if s],
        a.config_file, a.iters, a.seed, Path(a.submission), a.opts,
        heatmap_config=a.heatmap_config_file, heatmap_iters=a.heatmap_iters,
    )
    return 0


def main(argv=None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
