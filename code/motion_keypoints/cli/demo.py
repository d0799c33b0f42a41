"""The whole pipeline in one command, on the kit's synthetic data (``make demo``).

The demo is a list of stages (:func:`demo_stages`), each one user command with its arguments,
exactly what ``python code/<command>.py ARGS`` runs: synthetic data -> data check -> two
augmentation sets -> per set, both model families (a tiny-cpu Keypoint R-CNN, then a tiny HRNet
predicting on that R-CNN's person boxes), each predicted with flip TTA -> the ensemble of all
models on the validation images (the RMSE table) and on the test images (the submission, its
pictures) -> the submission checked. Trainings run in their own process (one run folder, one
log); the other stages run in this process. On a machine with 2 or more cores a training starts
together with the next training of the same family (on the next set), each with half the cores:
two small CPU trainings side by side use 2 cores better than one training with 2 threads. The
second one's lines are shown at its own stage. On a terminal each stage shows one moving progress
bar; otherwise (a pipe, a log file) the bars' redraws are dropped and only plain lines remain.
The closing summary gives each stage's time, the validation RMSE table beside the mean-pose
baseline, and where the files are. ``--long`` trains on more data for longer (a better model).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import io
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from ..errors import UserError
from . import options
from ._run import run_command


class StageError(UserError, RuntimeError):
    pass


@dataclass(frozen=True)
class Family:
    """One model family of the demo: its run-folder prefix, config, iterations and whether it
    predicts on the boxes of the set's R-CNN run (top-down heatmap models need person boxes)."""

    prefix: str
    config: str
    iters: int
    on_rcnn_boxes: bool = False


@dataclass(frozen=True)
class Profile:
    """What the demo trains on and for how long (``--long``: a better model, several times longer)."""

    n_train: int
    n_test: int
    rcnn_iters: int
    heatmap_iters: int


#: The default demo (minutes on 2 CPU cores) and ``--long`` (the demo of earlier versions).
PROFILES = {
    "short": Profile(n_train=400, n_test=20, rcnn_iters=60, heatmap_iters=150),
    "long": Profile(n_train=400, n_test=40, rcnn_iters=400, heatmap_iters=400),
}


@dataclass(frozen=True)
class Stage:
    """One step: ``python code/<command>.py args``, named ``name`` in the summary."""

    name: str
    command: str
    args: Tuple[str, ...]
    own_process: bool = False  # trainings: a fresh process per run (its own logging and lock)

    @property
    def shell(self) -> str:
        return f"python code/{self.command}.py {shlex.join(self.args)}"


@dataclass
class DemoPlan:
    """Everything :func:`demo_stages` needs; the folders derive from ``out``."""

    out: Path
    submission: Path
    families: Sequence[Family]
    n_train: int = 400
    n_test: int = 20
    width: int = 384
    height: int = 216
    seed: int = 0
    sets: Sequence[str] = ("demo", "demo_crop")
    extra_opts: Sequence[str] = ()  # to the R-CNN trainings
    side_by_side: bool = True  # two trainings of a family at once (see the module)
    runs: List[Path] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.out / "synthetic"

    @property
    def augmented(self) -> Path:
        return self.out / "augmented"

    @property
    def val_predictions(self) -> Path:
        return self.out / "ensemble" / "predictions_val.csv"


def _train_stage(plan: DemoPlan, fam: Family, set_name: str, run: Path) -> Stage:
    from ..engine.config import schedule_opts

    opts = ["DATA.ROOT", plan.data, "DATA.AUGMENTED_DIR", plan.augmented, "DATA.AUG_SET", set_name,
            "OUTPUT_DIR", run, *schedule_opts(fam.iters)]
    if not fam.on_rcnn_boxes:
        opts += list(plan.extra_opts)
    resume = ["--resume"] if (run / "last_checkpoint").is_file() else []  # a re-run continues
    return Stage(f"train {run.name}", "train",
                 tuple(map(str, ["--config-file", fam.config, *resume, *opts])), own_process=True)


def demo_stages(plan: DemoPlan) -> List[Stage]:
    """The demo as data: every stage and its arguments, in order (fills ``plan.runs``)."""
    data = str(plan.data)
    stages = [
        Stage("synthetic data", "make_synthetic", (
            "--out", data, "--train", str(plan.n_train), "--test", str(plan.n_test),
            "--width", str(plan.width), "--height", str(plan.height), "--seed", str(plan.seed),
            "--cameras-per-clip", "2", "--frames-per-camera", "1")),
        Stage("data check", "check_data", ("--data-root", data)),
    ]
    stages += [Stage(f"augment {s}", "augmentation",
                     ("--data-root", data, "--out", str(plan.augmented), "--sets", s))
               for s in plan.sets]
    plan.runs = []
    for set_name in plan.sets:
        rcnn_run = None
        for fam in plan.families:
            run = plan.out / "runs" / f"{fam.prefix}{set_name}"
            boxes = ("--boxes-from", str(rcnn_run)) if fam.on_rcnn_boxes and rcnn_run else ()
            if fam.on_rcnn_boxes and not boxes:
                raise StageError(f"{fam.config}: a heatmap family needs an R-CNN family before it")
            stages.append(_train_stage(plan, fam, set_name, run))
            stages += [Stage(f"predict {run.name} {split}", "predict", (
                "--run", str(run), "--data-root", data, "--split", split, "--flip-tta", *boxes))
                for split in ("val", "test")]
            rcnn_run = rcnn_run or (run if not fam.on_rcnn_boxes else None)
            plan.runs.append(run)
    runs = tuple(str(r) for r in plan.runs)
    stages += [
        Stage("ensemble val", "ensemble", ("--runs", *runs, "--data-root", data, "--split", "val",
                                           "--method", "mean", "--out", str(plan.val_predictions))),
        Stage("ensemble test", "ensemble", ("--runs", *runs, "--data-root", data, "--split",
                                            "test", "--method", "mean", "--out",
                                            str(plan.submission))),
        Stage("check submission", "check_submission", ("--data-root", data, str(plan.submission))),
    ]
    return stages


# ------------------------------------------------------------------------------ running stages


class PlainLines(io.TextIOBase):
    """A text stream for a pipe or a file: text ended by a carriage return is a progress bar's
    redraw and is dropped; text ended by a newline is a line, written to every stream."""

    def __init__(self, *streams: TextIO):
        self._streams = streams
        self._pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._pending += text
        lines = []
        while True:
            cuts = [i for i in (self._pending.find("\r"), self._pending.find("\n")) if i >= 0]
            if not cuts:
                break
            i = min(cuts)
            piece, sep, self._pending = self._pending[:i], self._pending[i], self._pending[i + 1:]
            if sep == "\n":
                lines.append(piece + "\n")
        if lines:
            for s in self._streams:
                s.write("".join(lines))
        return len(text)

    def flush(self) -> None:
        for s in self._streams:
            s.flush()


def _in_process(stage: Stage, plain: Optional[PlainLines]) -> int:
    main = importlib.import_module(f"motion_keypoints.cli.{stage.command}").main
    if plain is None:
        return main(list(stage.args))
    with contextlib.redirect_stdout(plain), contextlib.redirect_stderr(plain):
        return main(list(stage.args))


def _command(stage: Stage) -> List[str]:
    return [sys.executable, "-m", f"motion_keypoints.cli.{stage.command}", *stage.args]


def _env(threads: Optional[int]) -> Optional[dict]:
    """The environment of a training given ``threads`` torch threads (None: torch's default)."""
    return None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}


def _pump(proc: subprocess.Popen, plain: PlainLines) -> int:
    """Copy a process's output into ``plain`` until it ends; its exit status."""
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := proc.stdout.read1(65536):
        plain.write(decoder.decode(chunk))
    plain.write(decoder.decode(b"", final=True))
    return proc.wait()


def _own_process(stage: Stage, plain: Optional[PlainLines], threads: Optional[int] = None) -> int:
    if plain is None:  # a terminal: the stage's bar moves in place
        return subprocess.run(_command(stage), check=False, env=_env(threads)).returncode
    proc = subprocess.Popen(_command(stage), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=_env(threads))
    return _pump(proc, plain)


class Beside:
    """A training started beside another one (``threads`` torch threads): its plain lines are
    kept until its own stage, which waits for it (:meth:`wait`)."""

    def __init__(self, stage: Stage, threads: int, beside: str):
        self.stage, self.threads, self.beside = stage, threads, beside
        self.lines = io.StringIO()
        self.t0, self.seconds, self.rc = time.perf_counter(), 0.0, None
        self.proc = subprocess.Popen(_command(stage), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=_env(threads))
        self._reader = threading.Thread(target=self._run, daemon=True)
        self._reader.start()

    def _run(self) -> None:
        self.rc = _pump(self.proc, PlainLines(self.lines))
        self.seconds = time.perf_counter() - self.t0

    def wait(self, plain: PlainLines) -> int:
        self._reader.join()
        plain.write(self.lines.getvalue())
        return int(self.rc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self._reader.join()


def _config_of(stage: Stage) -> str:
    return stage.args[stage.args.index("--config-file") + 1]


def next_sibling(stages: Sequence[Stage], i: int) -> Optional[int]:
    """The next training after ``stages[i]`` (a training) with the same config: the same family
    on another set. Every training needs only the data and augmentation stages, which come
    before the first training, so the two can train at the same time. None when there is none."""
    if not (stages[i].own_process and stages[i].command == "train"):
        return None
    for j in range(i + 1, len(stages)):
        if stages[j].own_process and stages[j].command == "train" and \
                _config_of(stages[j]) == _config_of(stages[i]):
            return j
    return None


def run_stage(stage: Stage, log: TextIO, terminal: bool, threads: Optional[int] = None,
              started: Optional[Beside] = None, beside: Optional[Beside] = None) -> float:
    """Run one stage, print its header line; raises StageError when it fails. Seconds taken.
    ``threads``: torch threads of its training; ``started``: the stage already runs beside an
    earlier one (wait for it, print its lines); ``beside``: a training that runs beside this one."""
    header = f"\n==> {stage.name}: {stage.shell}\n"
    if started is not None:
        header += f"(trained beside {started.beside}, {started.threads} thread(s) each)\n"
    if beside is not None:
        header += f"(beside it: {beside.stage.name}, {beside.threads} thread(s) each)\n"
    sys.stdout.write(header)
    sys.stdout.flush()
    log.write(header)
    log.flush()
    plain = None if terminal else PlainLines(sys.stdout, log)
    t0 = time.perf_counter()
    if started is not None:
        rc = started.wait(plain or PlainLines(sys.stdout, log))
    elif stage.own_process:
        rc = _own_process(stage, plain, threads)
    else:
        rc = _in_process(stage, plain)
    if plain is not None:
        plain.flush()
    if rc != 0:
        raise StageError(f"stage {stage.name!r} failed (exit {rc}): {stage.shell}; see the "
                         f"lines above and {log.name}")
    return started.seconds if started is not None else time.perf_counter() - t0


# ------------------------------------------------------------------------------ summary


def _val_table(plan: DemoPlan) -> Tuple[str, dict]:
    """The ensemble's validation table (members, fusion per family, ensemble) and the ensemble's
    RMSE with the mean-pose baseline on the same images."""
    from ..ensemble.driver import run_ensemble
    from ..evaluation.evaluate import evaluate_files

    summary = run_ensemble(plan.runs, plan.data, "val", "mean", out=None, samples=0,
                           echo=lambda _line: None)
    scores = evaluate_files(plan.val_predictions, plan.data / "train_df.csv", data_root=plan.data)
    return summary.table, scores


def print_summary(plan: DemoPlan, times: Dict[str, float], total: float, log: TextIO,
                  paired: int = 0) -> None:
    from ..evaluation.evaluate import baseline_line

    table, scores = _val_table(plan)
    width = max(len(k) for k in times)
    lines = ["", f"demo done in {total / 60:.1f} min ({total:.0f} s). Time per stage:"]
    lines += [f"  {k:<{width}}  {v:6.1f} s" for k, v in times.items()]
    if paired:
        lines += [f"  ({paired} training(s) ran beside another one: their times overlap; "
                  "--one-at-a-time runs them in turn)"]
    lines += ["", f"Validation RMSE (px, {scores['images']} held-out images, flip TTA):", table,
              "ensemble: " + baseline_line(scores["rmse"], scores["mean_pose_rmse"])]
    samples = plan.submission.parent / "samples"
    lines += ["", "Files:",
              f"  submission   {plan.submission} (checked)",
              f"  pictures     {samples}/ and {plan.out / 'runs'}/*/samples/",
              f"  runs         {', '.join(str(r) for r in plan.runs)}",
              f"  data         {plan.data} (augmentation sets in {plan.augmented})",
              f"  log          {log.name}"]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    log.write(text)


def _run_stages(plan: DemoPlan, stages: Sequence[Stage], log: TextIO, terminal: bool,
                times: Dict[str, float]) -> int:
    """Every stage in order; a training starts its next sibling (:func:`next_sibling`) beside
    it when the plan allows and the demo may use 2 cores or more (half the cores each): the
    cores of its affinity mask, no more than ``OMP_NUM_THREADS`` where that is set (a demo held
    to one thread trains one model at a time). Returns how many trainings ran beside another."""
    from ..utils import thread_budget

    cores = thread_budget()
    pairs = plan.side_by_side and cores >= 2
    running: Dict[int, Beside] = {}
    paired = 0
    try:
        for i, stage in enumerate(stages):
            started, beside, threads = running.pop(i, None), None, None
            j = next_sibling(stages, i) if pairs and started is None else None
            if j is not None and j not in running:
                threads = cores // 2
                beside = running[j] = Beside(stages[j], threads, stage.name)
            times[stage.name] = run_stage(stage, log, terminal, threads, started, beside)
            paired += started is not None
    finally:
        for other in running.values():  # a stage failed: no training is left behind
            other.stop()
    return paired


def run_demo(plan: DemoPlan, terminal: Optional[bool] = None) -> dict:
    """Run every stage of ``plan``; returns paths, per-stage seconds and the total."""
    from ..io.outputs import check_output_file, claim_dir

    for fam in plan.families:
        if not Path(fam.config).is_file():
            raise StageError(f"config file {fam.config} not found in {Path.cwd()}: run the demo "
                             "from the repository root (make demo) or pass --config-file")
    if not plan.sets:
        raise StageError("--sets is empty: give at least one augmentation set (e.g. demo)")
    # before any work: the submission may be written, the demo's folder is the demo's own
    check_output_file(plan.submission, "submission", option="--submission")
    claim_dir(plan.out, "demo", option="--out")
    stages = demo_stages(plan)
    terminal = sys.stdout.isatty() if terminal is None else terminal
    times: Dict[str, float] = {}
    t0 = time.perf_counter()
    # one log per invocation (never replaces an earlier one), appended as the stages run so it is
    # kept when one fails, in the folder claimed above
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = check_output_file(plan.out / f"demo-{stamp}.log", "demo log", option="--out")
    with open(log_path, "a") as log:
        paired = _run_stages(plan, stages, log, terminal, times)
        total = time.perf_counter() - t0
        print_summary(plan, times, total, log, paired)
    return {"submission": plan.submission, "runs": plan.runs, "data": plan.data,
            "seconds": total, "times": times}


def _main(argv) -> int:
    p = options.command_parser("demo", __doc__, raw=True, allow_abbrev=False)
    short, long = PROFILES["short"], PROFILES["long"]
    p.add_argument("--long", action="store_true",
                   help=f"a better model, several times longer: {long.n_test} test images, "
                        f"{long.rcnn_iters} R-CNN and {long.heatmap_iters} heatmap iterations "
                        "(default: off)")
    options.add_out(p, "working folder of the demo", folder=True, default="outputs/demo")
    p.add_argument("--train", type=int, default=None,
                   help=f"synthetic training images (default: {short.n_train})")
    p.add_argument("--test", type=int, default=None,
                   help=f"synthetic test images (default: {short.n_test}, --long {long.n_test})")
    p.add_argument("--width", type=int, default=384,
                   help="synthetic image width (default: %(default)s)")
    p.add_argument("--height", type=int, default=216,
                   help="synthetic image height (default: %(default)s)")
    p.add_argument("--sets", default="demo,demo_crop",
                   help="augmentation sets; both model families are trained on each "
                        "(default: %(default)s)")
    p.add_argument("--config-file", default="configs/tiny-cpu.yaml", metavar="FILE",
                   help="training config of the Keypoint R-CNN models (default: %(default)s)")
    p.add_argument("--iters", type=int, default=None,
                   help=f"training iterations per Keypoint R-CNN model (default: "
                        f"{short.rcnn_iters}, --long {long.rcnn_iters})")
    p.add_argument("--heatmap-config-file", default="configs/tiny-hrnet.yaml", metavar="FILE",
                   help="training config of the heatmap models, predicted on the boxes of the "
                        "same set's R-CNN; '' = no heatmap models (default: %(default)s)")
    p.add_argument("--heatmap-iters", type=int, default=None,
                   help=f"training iterations per heatmap model (default: {short.heatmap_iters}, "
                        f"--long {long.heatmap_iters})")
    p.add_argument("--one-at-a-time", action="store_true",
                   help="train one model at a time with every core (default: off: two trainings "
                        "of a family side by side, half the cores each, on 2 cores or more)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the synthetic data (default: %(default)s)")
    p.add_argument("--submission", default="submissions/submission.csv", metavar="FILE",
                   help="the submission to write (a file; default: %(default)s)")
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="extra config overrides KEY VALUE ... of the R-CNN trainings "
                        "(default: none)")
    a = p.parse_args(argv)
    prof = PROFILES["long" if a.long else "short"]
    prof = replace(prof, **{k: v for k, v in (("n_train", a.train), ("n_test", a.test),
                                              ("rcnn_iters", a.iters),
                                              ("heatmap_iters", a.heatmap_iters)) if v is not None})
    if prof.rcnn_iters < 1 or prof.heatmap_iters < 1:
        p.error("--iters and --heatmap-iters must be at least 1")
    families = [Family("", a.config_file, prof.rcnn_iters)]
    if a.heatmap_config_file:
        families.append(Family("hrnet_", a.heatmap_config_file, prof.heatmap_iters,
                               on_rcnn_boxes=True))
    plan = DemoPlan(
        out=Path(a.out), submission=Path(a.submission), families=families,
        n_train=prof.n_train, n_test=prof.n_test, width=a.width, height=a.height, seed=a.seed,
        sets=[s for s in a.sets.split(",") if s], extra_opts=list(a.opts),
        side_by_side=not a.one_at_a_time,
    )
    run_demo(plan)
    return 0


def main(argv=None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
