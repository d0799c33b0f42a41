"""One process per run folder (issue 16 item 2): a second process is refused naming the holder's
PID, a crashed holder does not block, and two trainings started at once into one folder do not
both run."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import REPO, run_main, tiny_opts

from motion_keypoints.errors import UserError
from motion_keypoints.io.lock import LOCK_FILE, RunLock, RunLockedError, held_runs

HOLD = """
import sys, time
from motion_keypoints.io.lock import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(run):
    """A process that holds ``run``'s lock (returns once it does)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_holder_does_not_block(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        with pytest.raises(RunLockedError) as err:
            RunLock(run).acquire()
        msg = str(err.value)
        assert isinstance(err.value, UserError) and "\n" not in msg
        assert f"PID {proc.pid}" in msg and f"kill {proc.pid}" in msg and "OUTPUT_DIR" in msg
        assert run.resolve() not in held_runs()
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no clean-up of its own
        proc.wait()
    # The dead holder's lock file (with its PID) is still there, and blocks nothing.
    assert f"pid={proc.pid}" in (run / LOCK_FILE).read_text()
    with RunLock(run) as lock:
        assert lock.held and run.resolve() in held_runs()
        assert f"pid={os.getpid()}" in (run / LOCK_FILE).read_text()
        with RunLock(run):  # re-entrant in one process
            pass
        assert run.resolve() in held_runs()
    assert run.resolve() not in held_runs() and not (run / LOCK_FILE).exists()
    assert run.is_dir()  # a folder the lock did not create stays


def test_processes_a_holder_starts_share_its_run_and_only_while_it_holds_it(tmp_path):
    """``--num-gpus N`` workers are spawned processes: they write into the run their launching
    process holds (the output policy asks held_runs), and only while it holds it."""
    run = tmp_path / "run"
    ask = ["-c", "from motion_keypoints.io.lock import held_runs; print(sorted(map(str, held_runs())))"]
    with RunLock(run):
        child = subprocess.run([sys.executable, *ask], capture_output=True, text=True, check=True)
        assert str(run.resolve()) in child.stdout
    env = {**os.environ, "MOTION_KEYPOINTS_RUN_LOCKS": f"{os.getpid()}={run.resolve()}"}
    child = subprocess.run([sys.executable, *ask], capture_output=True, text=True, check=True,
                           env=env)  # a stale claim (the lock is released) is not believed
    assert str(run.resolve()) not in child.stdout


def test_no_lock_file_is_written_into_a_data_folder(synthetic_data, tmp_path):
    from motion_keypoints.io.outputs import OutputError

    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    before = sorted(p.name for p in data.iterdir())
    for run in (data, data / "images", data / "runs" / "r"):
        with pytest.raises(OutputError):
            RunLock(run).acquire()
    assert sorted(p.name for p in data.iterdir()) == before and not (data / "runs").exists()


def test_a_refused_or_failed_start_leaves_no_folder(tmp_path):
    run = tmp_path / "new" / "run"
    with RunLock(run):
        assert (run / LOCK_FILE).is_file()
    assert not run.exists(), "the folder the lock created (and nothing wrote into) stays"
    with RunLock(run):
        (run / "log.txt").write_text("work\n")
    assert (run / "log.txt").is_file() and not (run / LOCK_FILE).exists()


@pytest.mark.slow
def test_two_trainings_started_at_once_into_one_folder(synthetic_data, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, str(REPO / "code" / "train.py"), "--config-file",
            str(REPO / "configs" / "tiny-cpu.yaml"),
            *tiny_opts(synthetic_data, out, 2, **{"TEST.EVAL_PERIOD": 0})]
    procs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p, *p.communicate(timeout=1500)) for p in procs]
    codes = sorted(p.returncode for p, *_ in results)
    assert codes == [0, 1], [(p.returncode, err[-2000:]) for p, _, err in results]
    (winner, win_out, win_err), (loser, _, loser_err) = sorted(results,
                                                                key=lambda r: r[0].returncode)
    lines = [x for x in loser_err.splitlines() if x.strip()]
    assert lines == [lines[-1]] and lines[-1].startswith("error: "), loser_err[-2000:]
    assert f"PID {winner.pid}" in lines[-1] and "in use" in lines[-1]
    # Validated at the end only (no best checkpoint): the summary still names the iteration.
    done = [x for x in (win_out + win_err).splitlines() if " done: " in x]
    assert done and "best validation RMSE" in done[-1] and "at iteration 2;" in done[-1], done
    # One run's metrics, not two interleaved: every line whole, iterations strictly increasing.
    its = [json.loads(line)["iteration"] for line in (out / "metrics.json").read_text().splitlines()]
    assert its == sorted(set(its)) and its, its
    info = json.loads((out / "run_info.json").read_text())
    assert info["fingerprint"] == json.loads((out / "run.json").read_text())["fingerprint"]
    assert not (out / LOCK_FILE).exists()


def test_resume_or_clear_while_the_run_is_held_is_refused_before_any_work(synthetic_data,
                                                                          tmp_path):
    """``--resume`` or ``--clear`` into a run another process holds: one line with the PID,
    nothing in the folder touched (--clear would have deleted it)."""
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        (out / "model_0000001.pth").write_bytes(b"work in progress")
        before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        for flag in ("--resume", "--clear"):  # in this process (conftest.run_main)
            res = run_main("train", flag, "--config-file", REPO / "configs" / "tiny-cpu.yaml",
                           "DATA.ROOT", synthetic_data, "OUTPUT_DIR", out)
            assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
            assert f"PID {proc.pid}" in res.stderr, (flag, res.stderr[-2000:])
        assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
