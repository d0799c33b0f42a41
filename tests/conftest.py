"""Shared fixtures. Paths are relative to the repository root found from this file, so every test
passes whatever folder pytest is started from."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


#: Test modules of the shared learned runs and of the demo's output: first in the collection, so
#: that under ``--dist loadfile`` (``make test``) their test process starts with them.
FIRST_MODULES = ("test_learning.py", "test_heatmap_learning.py", "test_pipeline.py")
#: ... and last: a module that needs only the shared R-CNN, for the process that is done first.
LAST_MODULES = ("test_keypoint_transfer.py",)


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="also run the long tier (tests marked long: the 1000-iteration R-CNN "
                          "learning run; `make test-long`); MK_LONG=1 does the same")
    parser.addoption("--real-size", action="store_true",
                     help="also run the real-size tier (tests marked real_size: every shipped "
                          "config at 1920x1080; `make test-real-size`, which CI runs after the "
                          "suite); MK_REAL_SIZE=1 does the same, and so does --long")


def pytest_collection_modifyitems(config, items):
    """Skip the long tier unless asked for (--long or MK_LONG=1) and the real-size tier unless
    asked for (--real-size, MK_REAL_SIZE=1 or the long tier); the modules of the longest shared
    fixtures first, LAST_MODULES last (stable otherwise)."""
    long_tier = config.getoption("--long") or os.environ.get("MK_LONG") == "1"
    real_size = long_tier or config.getoption("--real-size") or os.environ.get("MK_REAL_SIZE") == "1"
    skips = {
        "long": (long_tier, "long tier: run it with `make test-long` (pytest --long)"),
        "real_size": (real_size, "real-size tier: run it with `make test-real-size` "
                                 "(pytest --real-size; CI runs it after the suite)"),
    }
    for item in items:
        for marker, (wanted, reason) in skips.items():
            if marker in item.keywords and not wanted:
                item.add_marker(pytest.mark.skip(reason=reason))
    rank = {name: i for i, name in enumerate(FIRST_MODULES)}
    rank.update({name: len(FIRST_MODULES) + 1 for name in LAST_MODULES})
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST_MODULES)))


def shared_once(tmp_path_factory, name: str, build):
    """``build(folder)`` -> a JSON-able result, once per test session even across pytest-xdist
    processes: the first process builds under a file lock in the session's common temporary
    folder, the others wait for it and read its result."""
    import json

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' folders popen-gw<N> share this one
    folder, done = base / "shared" / name, base / "shared" / f"{name}.json"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(done) + ".lock"):
        if done.is_file():
            return json.loads(done.read_text())
        folder.mkdir(exist_ok=True)
        result = build(folder)
        done.write_text(json.dumps(result))
        return result


def pytest_configure(config):
    """Under pytest-xdist, each worker's trainings get an equal share of the cores (torch's
    default of one thread per core in every worker oversubscribes them); an explicit
    OMP_NUM_THREADS is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(scope="session", autouse=True)
def _output_ledger(tmp_path_factory):
    """The output policy's ledger of this test session lives in a temporary folder (subprocesses
    inherit it), not in the user's ``~/.local/state``."""
    from motion_keypoints.io.outputs import LEDGER_ENV

    old = os.environ.get(LEDGER_ENV)
    # one ledger for the session's processes: the shared runs' outputs are written by one of them
    os.environ[LEDGER_ENV] = str(shared_once(tmp_path_factory, "ledger",
                                             lambda d: str(d / "outputs.jsonl")))
    yield
    if old is None:
        os.environ.pop(LEDGER_ENV, None)
    else:
        os.environ[LEDGER_ENV] = old


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """A small synthetic data folder in the competition layout (read-only for tests: copy it
    before modifying anything)."""
    from motion_keypoints.data.synthetic.writer import make_synthetic

    root = tmp_path_factory.mktemp("synthetic") / "data"
    make_synthetic(root, n_train=24, n_test=8, width=320, height=180, seed=0)
    return root


# ---------------------------------------------------------------- trained tiny runs (slow tests)

#: Synthetic data and iterations of the learning runs (CPU minutes, see tests/test_train.py):
#: 200 clips seen by two cameras, one frame each, so the validation clips are unseen poses.
LEARN_DATA = {"n_train": 400, "n_test": 16, "width": 384, "height": 216, "seed": 0,
              "cameras_per_clip": 2, "frames_per_camera": 1}
#: The CI tier's shared R-CNN: enough to find every validation person (the heatmap model's
#: boxes) and a learned keypoint head (the transfer test); about 6x cheaper than the long tier's.
LEARN_ITERS = 160
#: The long tier's R-CNN learning run (``pytest --long``, ``make test-long``): ~25 CPU-minutes.
LONG_LEARN_ITERS = 1000


def run_script(script: str, *args, check=True, timeout=1800, env=None, unset=()):
    """Run ``python code/<script>.py args`` from the repo root, as a user would; ``env`` adds
    variables, ``unset`` removes some."""
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    proc = subprocess.run(
        [sys.executable, str(REPO / "code" / f"{script}.py"), *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=environ,
    )
    if check:
        _check(script, args, proc)
    return proc


def _check(script: str, args, proc: subprocess.CompletedProcess) -> None:
    """Fail the test when ``proc`` (``script args`` by run_script or run_main) failed."""
    if proc.returncode != 0:
        raise AssertionError(
            f"{script}.py {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"--- stdout (tail)\n{proc.stdout[-4000:]}\n--- stderr (tail)\n{proc.stderr[-4000:]}"
        )


def run_main(script: str, *args, check=False):
    """``python code/<script>.py args`` in this process (the command's ``main``, through the one
    error boundary): a subprocess.CompletedProcess with its exit status and captured output. For
    the fast tier's checks of commands that fail before any work, and for the slow tests' steps
    after a training (predict, ensemble, ...: no interpreter start, ~8 s each); ``check``: fail
    the test when the command fails, as run_script does. Trainings keep their own process."""
    import contextlib
    import importlib
    import io

    out, err = io.StringIO(), io.StringIO()
    main = importlib.import_module(f"motion_keypoints.cli.{script}").main
    argv = list(map(str, args))
    cwd = os.getcwd()
    os.chdir(REPO)  # as run_script: relative paths from the repository root
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(cwd)
    proc = subprocess.CompletedProcess([script, *argv], code, out.getvalue(), err.getvalue())
    if check:
        _check(script, argv, proc)
    return proc


class log_records:
    """``with log_records("motion_keypoints.x") as records:`` the log records of that logger (and
    its children) at INFO and above while the block runs, whatever its handlers propagate."""

    def __init__(self, name: str):
        import logging

        self.log, self.records = logging.getLogger(name), []
        self.handler = logging.Handler()
        self.handler.emit = self.records.append

    def __enter__(self):
        import logging

        self.level = self.log.level
        self.log.addHandler(self.handler)
        self.log.setLevel(logging.INFO)
        return self.records

    def __exit__(self, *exc):
        self.log.removeHandler(self.handler)
        self.log.setLevel(self.level)
        return False


def tiny_opts(data, out, iters, **extra):
    from motion_keypoints.engine.config import schedule_opts

    sched = schedule_opts(iters)
    opts = {
        **dict(zip(sched[::2], sched[1::2])),
        "DATA.ROOT": data, "OUTPUT_DIR": out, "DATA.VAL_FRACTION": 0.2, **extra,
    }
    return [str(x) for kv in opts.items() for x in kv]


@pytest.fixture(scope="session")
def learn_data(tmp_path_factory):
    from motion_keypoints.data.synthetic.writer import make_synthetic

    def build(folder):
        make_synthetic(folder / "data", progress=False, **LEARN_DATA)
        return str(folder / "data")

    return Path(shared_once(tmp_path_factory, "learn", build))


def _train(tmp_path_factory, name, config, data, out, iters):
    """Train ``config`` on ``data`` into ``out`` once per session; returns (run, CPU seconds of the
    training process, wall seconds)."""
    import time

    def build(_folder):
        cpu0, t0 = _child_cpu(), time.perf_counter()
        run_script("train", "--config-file", REPO / "configs" / config, *tiny_opts(data, out, iters))
        return [str(out), _child_cpu() - cpu0, time.perf_counter() - t0]

    run, cpu, wall = shared_once(tmp_path_factory, name, build)
    return Path(run), cpu, wall


@pytest.fixture(scope="session")
def learned_run(tmp_path_factory, learn_data):
    """A tiny-cpu model trained from scratch on the original synthetic images."""
    return _train(tmp_path_factory, "learned_run", "tiny-cpu.yaml", learn_data,
                  learn_data.parent / "runs" / "original", LEARN_ITERS)[0]


@pytest.fixture(scope="session")
def long_learned_run(tmp_path_factory, learn_data):
    """The long tier's tiny-cpu R-CNN: trained from scratch for LONG_LEARN_ITERS iterations."""
    return _train(tmp_path_factory, "long_learned_run", "tiny-cpu.yaml", learn_data,
                  learn_data.parent / "runs" / "original_long", LONG_LEARN_ITERS)[0]


@pytest.fixture(scope="session")
def learned_predictions(tmp_path_factory, learned_run, learn_data):
    """learned_run's predictions of the validation and test images with flip TTA (and without:
    ``predictions_<split>_noflip.csv``), made once for every test that reads them; returns the
    run."""
    def build(_folder):
        for split in ("val", "test"):
            run_main("predict", "--run", learned_run, "--data-root", learn_data, "--split",
                     split, "--flip-tta", check=True)
        return str(learned_run)

    return Path(shared_once(tmp_path_factory, "learned_predictions", build))


def validation_truth_and_baseline(run, learn_data):
    """(validation rows, their keypoints (N, K, 2), the mean-pose baseline RMSE on them from the
    run's training rows) for a run of learn_data."""
    import json

    import numpy as np

    from motion_keypoints.data.layout import DataPaths
    from motion_keypoints.evaluation.metrics import mean_pose_baseline, rmse
    from motion_keypoints.io.images import image_size
    from motion_keypoints.io.tables import keypoints_array, read_keypoint_csv

    split = json.loads((run / "split.json").read_text())
    paths = DataPaths.from_root(learn_data)
    df = read_keypoint_csv(paths.train_csv)
    val = df[df["image"].isin(split["val"])]
    train = df[~df["image"].isin(split["val"])]
    size = lambda rows: np.array([image_size(paths.train_images / n) for n in rows["image"]], float)  # noqa: E731
    truth = keypoints_array(val)
    return val, truth, rmse(mean_pose_baseline(keypoints_array(train), size(train), size(val)), truth)


def _child_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


#: Iterations of the session's heatmap model, what the CI budget affords (tiny-hrnet ~0.4 s CPU
#: per iteration with 1 torch thread on a 2-core machine; the learning test prints its seconds).
HEATMAP_ITERS = 400


@pytest.fixture(scope="session")
def heatmap_run(tmp_path_factory, learn_data):
    """tiny-hrnet trained from scratch on learn_data (the same validation split as learned_run);
    returns (run, CPU seconds of the training process, wall seconds)."""
    return _train(tmp_path_factory, "heatmap_run", "tiny-hrnet.yaml", learn_data,
                  learn_data.parent / "runs" / "hrnet", HEATMAP_ITERS)


@pytest.fixture(scope="session")
def heatmap_predictions(tmp_path_factory, heatmap_run, learned_predictions, learn_data):
    """The heatmap run's predictions of val and test (flip TTA) on learned_run's person boxes,
    made once; returns {split: predict.py's stdout}."""
    def build(_folder):
        return {split: run_main(
            "predict", "--run", heatmap_run[0], "--data-root", learn_data, "--split", split,
            "--flip-tta", "--boxes-from", learned_predictions, check=True).stdout
            for split in ("val", "test")}

    return shared_once(tmp_path_factory, "heatmap_predictions", build)


@pytest.fixture(scope="session")
def demo_output(tmp_path_factory):
    """The one-command demo on a reduced size: (demo folder, submission path, demo stdout). Its
    tests check the demo's stages and outputs, not what the models learned: 4 iterations per
    training (105 s with one thread, against 161 s with 12 R-CNN / 6 heatmap iterations)."""
    def build(root):
        sub = root / "submission.csv"
        proc = run_script("demo", "--out", root / "demo", "--train", 36, "--test", 6,
                          "--iters", 4, "--heatmap-iters", 4, "--submission", sub, timeout=1500)
        return [str(root / "demo"), str(sub), proc.stdout]

    demo, sub, stdout = shared_once(tmp_path_factory, "demo_output", build)
    return Path(demo), Path(sub), stdout
