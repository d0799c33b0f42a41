"""Checkpoints that survive a kill (issue 16 item 3): every .pth and tag file is written to a
temporary file and renamed, the tag moves only after its file is complete, a full disk is one
line and leaves no partial file, ``--resume`` from a truncated checkpoint falls back to the
previous good one, and a checkpoint names its run so another run's is refused at prediction."""

import errno
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_main, run_script, tiny_opts

from motion_keypoints.errors import UserError

RUN = {"id": "a" * 32, "fingerprint": "f" * 64, "name": "run"}


def _checkpointer(run_dir, model=None, run=RUN):
    import torch

    from motion_keypoints.models.rcnn.trainer import RunTrainCheckpointer

    return RunTrainCheckpointer(model or torch.nn.Linear(4, 4), str(run_dir), run=run)


def _loads(path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


# ------------------------------------------------------------------------------- kill -9

SAVER = """
import sys, types
import torch
from motion_keypoints.engine.hooks import BestCheckpointer
from motion_keypoints.io.lock import RunLock
from motion_keypoints.models.rcnn.trainer import RunTrainCheckpointer

run = sys.argv[1]
model = torch.nn.Module()
model.register_buffer("big", torch.ones(int(sys.argv[2]) * 2**18))  # MiB of float32
with RunLock(run):
    ident = {"id": "a" * 32, "fingerprint": "f", "name": "r"}
    small = RunTrainCheckpointer(torch.nn.Linear(4, 4), run, run=ident)
    small.save("model_0000001", iteration=1)  # a complete, tagged checkpoint first
    ckpt = RunTrainCheckpointer(model, run, run=ident)
    metric = {"keypoints_rmse/rmse": (12.5, 3)}
    trainer = types.SimpleNamespace(storage=types.SimpleNamespace(latest=lambda: metric),
                                    start_iter=0)
    hook = BestCheckpointer(2, ckpt, "keypoints_rmse/rmse", run)
    hook.trainer = trainer
    print("saving best", flush=True)
    hook._best_checking()  # the first model_best.pth, then best_checkpoint.json
    print("done", flush=True)
"""


@pytest.mark.slow
def test_kill_9_during_a_checkpoint_save_leaves_no_partial_file_and_a_complete_tag(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(run), "256"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saving best"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill as soon as the save is under way
        writing = [p for p in run.iterdir() if "model_best" in p.name and p.stat().st_size > 0]
        if writing or proc.poll() is not None:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    rest = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL and "done" not in rest, "killed too late"
    assert not (run / "model_best.pth").exists(), "a partial file under the final name"
    if (run / "best_checkpoint.json").exists():  # the record never names an incomplete file
        _loads(json.loads((run / "best_checkpoint.json").read_text())["path"])
    tag = (run / "last_checkpoint").read_text().strip()
    assert tag == "model_0000001.pth"
    assert _loads(run / tag)["iteration"] == 1  # complete
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".model_best")]
    assert leftovers, "the kill came before the temporary file existed"
    # The next start of the run (under its lock) removes what the killed write left.
    from motion_keypoints.io.lock import RunLock
    from motion_keypoints.io.runs import has_checkpoints, remove_partial_files

    with RunLock(run):
        assert remove_partial_files(run) == len(leftovers)
    assert not [p for p in run.iterdir() if p.name.startswith(".model_best")]
    assert has_checkpoints(run)


# ----------------------------------------------------------------------------- full disk


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room=1000):
        self.f, self.room = f, room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self.room:
            self.f.write(bytes(b[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.f.write(b)


def _assert_full_disk_refused(run, ckpt, name):
    from motion_keypoints.engine.checkpoint import CheckpointError

    with pytest.raises(CheckpointError) as err:
        ckpt.save(name, iteration=2)
    msg = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in msg
    assert f"{name}.pth" in msg and "no space left" in msg and "--resume" in msg
    names = sorted(p.name for p in run.iterdir())
    assert f"{name}.pth" not in names and not [n for n in names if ".tmp" in n], names
    assert (run / "last_checkpoint").read_text().strip() == "model_0000001.pth"
    assert _loads(run / "model_0000001.pth")["iteration"] == 1


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import torch

    from motion_keypoints.io.lock import RunLock

    run = tmp_path / "run"
    with RunLock(run):
        ckpt = _checkpointer(run)
        ckpt.save("model_0000001", iteration=1)
        real_save = torch.save
        monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: real_save(obj, _FullDisk(f)))
        _assert_full_disk_refused(run, ckpt, "model_0000002")


def test_a_real_full_disk(tmp_path):
    """The same on a 1 MiB tmpfs (needs root to mount; skipped elsewhere)."""
    import torch

    from motion_keypoints.io.lock import RunLock

    run = tmp_path / "tiny"
    run.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(run)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        with RunLock(run):
            model = torch.nn.Module()
            model.register_buffer("w", torch.ones(100_000))  # 400 kB: one fits, two do not
            ckpt = _checkpointer(run, model)
            ckpt.save("model_0000001", iteration=1)
            (run / "filler").write_bytes(b"\0" * 300_000)
            _assert_full_disk_refused(run, ckpt, "model_0000002")
    finally:
        subprocess.run(["umount", str(run)], check=False)


# ----------------------------------------------------------------- resume and the run's id


def test_resume_falls_back_from_an_unreadable_last_checkpoint(tmp_path, caplog):
    import torch

    from motion_keypoints.engine.checkpoint import CheckpointError
    from motion_keypoints.io.lock import RunLock

    run = tmp_path / "run"
    with RunLock(run):
        ckpt = _checkpointer(run)
        for it in (1, 2, 3):
            ckpt.save(f"model_{it:07d}", iteration=it)
        other = _checkpointer(run, run={**RUN, "id": "b" * 32, "name": "other"})
        other.save("model_0000002", tag=False, iteration=2)  # another run's, copied in
        last = run / "model_0000003.pth"
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # as a kill left it
        fresh = _checkpointer(run, torch.nn.Linear(4, 4))
        assert fresh.resume_or_load("", resume=True)["iteration"] == 1
        text = caplog.text
        assert "model_0000003.pth is not a readable checkpoint" in text
        assert "model_0000002.pth is the checkpoint of another run" in text
        assert "previous good checkpoint" in text and "model_0000001.pth" in text
        # nothing to fall back to: one line naming the file
        (run / "model_0000001.pth").unlink()
        (run / "model_0000002.pth").unlink()
        with pytest.raises(CheckpointError) as err:
            _checkpointer(run).resume_or_load("", resume=True)
        msg = str(err.value)
        assert "model_0000003.pth" in msg and "--clear" in msg and "\n" not in msg


def test_a_checkpoint_records_its_run_and_prediction_refuses_another_runs(tmp_path, caplog):
    import torch

    from motion_keypoints.engine.checkpoint import RUN_KEY, check_checkpoint_run
    from motion_keypoints.io.lock import RunLock
    from motion_keypoints.io.runs import RunError, write_run_record

    a, b = tmp_path / "a", tmp_path / "b"
    for d, rid in ((a, "a" * 32), (b, "b" * 32)):
        d.mkdir()
        write_run_record(d, {"fingerprint": "f" * 64, "run_id": rid})  # same config and data
    with RunLock(a):
        _checkpointer(a, run={"id": "a" * 32, "fingerprint": "f" * 64, "name": "a"}).save(
            "model_best", iteration=3)
    assert _loads(a / "model_best.pth")[RUN_KEY]["id"] == "a" * 32
    check_checkpoint_run(a / "model_best.pth", a)
    shutil.copy(a / "model_best.pth", b / "model_best.pth")
    with pytest.raises(RunError) as err:
        check_checkpoint_run(b / "model_best.pth", b)
    msg = str(err.value)
    assert "another run" in msg and "(a," in msg and str(b) in msg and "\n" not in msg
    # a user's own weights (no run recorded): used, with a warning that says so
    torch.save({"model": torch.nn.Linear(4, 4).state_dict()}, b / "model_final.pth")
    check_checkpoint_run(b / "model_final.pth", b)
    assert "records no run" in caplog.text


# --------------------------------------------------------------- one training, end to end


@pytest.mark.slow
def test_a_trained_run_resumes_past_a_truncated_checkpoint_and_refuses_a_foreign_one(
        synthetic_data, tmp_path):
    out = tmp_path / "run"
    args = ["--config-file", str(REPO / "configs" / "tiny-cpu.yaml"),
            *tiny_opts(synthetic_data, out, 2, **{"SOLVER.CHECKPOINT_PERIOD": 1,
                                                  "TEST.EVAL_PERIOD": 1})]
    first = run_script("train", *args)
    info = json.loads((out / "run_info.json").read_text())
    record = json.loads((out / "run.json").read_text())
    assert _loads(out / "model_best.pth")["run"]["id"] == record["run_id"]
    # The summary names the iteration of its best validation RMSE (never "None").
    done = [x for x in (first.stdout + first.stderr).splitlines() if " done: " in x][-1]
    assert f"at iteration {info['best_iteration'] + 1};" in done, done
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    final = out / "model_final.pth"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 3])  # a kill before this fix
    resumed = run_script("train", "--resume", *args, "SOLVER.MAX_ITER", "3")
    said = resumed.stdout + resumed.stderr
    assert "model_final.pth is not a readable checkpoint" in said, said[-3000:]
    fallback = [x for x in said.splitlines() if "previous good checkpoint" in x]
    assert fallback and "(iteration 1)" in fallback[0], said[-3000:]  # the newest good one
    assert "resuming at iteration 2" in said
    assert _loads(out / "model_final.pth")["iteration"] == 2  # trained on to MAX_ITER 3
    # another run's model_best.pth copied in: prediction refuses it, writing nothing
    other = tmp_path / "other"
    shutil.copytree(out, other)
    rec = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**rec, "run_id": "c" * 32}))
    before = sorted(p.name for p in other.iterdir())
    proc = run_main("predict", "--run", other, "--data-root", synthetic_data)  # in this process
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "model_best.pth is the checkpoint of another run" in proc.stderr
    assert sorted(p.name for p in other.iterdir()) == before
    assert Path(out).is_dir()


@pytest.mark.slow
def test_a_training_that_fills_its_disk_stops_with_one_line(synthetic_data, tmp_path):
    """A real full disk during training (a 70 MiB tmpfs: one tiny-cpu checkpoint fits, not two):
    one ``error:`` line, no traceback, no partial file, the tag on the complete checkpoint."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=70m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        out = disk / "run"
        proc = run_script("train", "--config-file", str(REPO / "configs" / "tiny-cpu.yaml"),
                          *tiny_opts(synthetic_data, out, 3, **{"SOLVER.CHECKPOINT_PERIOD": 1,
                                                                "TEST.EVAL_PERIOD": 0}),
                          check=False)
        lines = [x for x in proc.stderr.splitlines() if x.strip() and "it/s" not in x
                 and "s/it" not in x]
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert lines[-1].startswith("error: cannot save") and "no space left" in lines[-1]
        names = sorted(p.name for p in out.iterdir())
        assert not [n for n in names if ".tmp" in n], names
        tag = (out / "last_checkpoint").read_text().strip()
        assert _loads(out / tag)["iteration"] == 0 and "model_0000001.pth" not in names
    finally:
        subprocess.run(["umount", str(disk)], check=False)
