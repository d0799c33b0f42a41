"""The one output policy (io/outputs.py), property-style: every command that writes is pointed at
every kind of protected artefact (directly, through ``..``, a symlink and a hard link) and every
input's sha256 is checked afterwards. Then the leaks issue 16 lists, re-runs, ``--overwrite`` and
``--clear``. In-process (each ``main`` goes through ``run_command``, the one entry)."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from motion_keypoints.cli import augmentation as aug_cli
from motion_keypoints.cli import check_data as check_data_cli
from motion_keypoints.cli import ensemble as ensemble_cli
from motion_keypoints.cli import make_synthetic as synthetic_cli
from motion_keypoints.cli import predict as predict_cli
from motion_keypoints.cli import predict_video as video_cli
from motion_keypoints.cli import smooth as smooth_cli
from motion_keypoints.io.outputs import (
    LEDGER_ENV,
    OutputError,
    artefact_kind,
    check_run_place,
    output_file,
)
from motion_keypoints.io.predictions import prediction_frame, write_predictions
from motion_keypoints.io.runs import clear_run_folder
from motion_keypoints.io.video import write_video
from motion_keypoints.meta import FLIP_PAIRS, KEYPOINT_NAMES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_ledger(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(LEDGER_ENV, str(tmp_path_factory.getbasetemp() / "ledger.jsonl"))


def _fake_run(run, names, shift=0.0):
    """A run folder as training leaves it (records, a checkpoint, test predictions)."""
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    info = {"name": run.name, "keypoint_names": list(KEYPOINT_NAMES), "family": "rcnn",
            "flip_pairs": [list(p) for p in FLIP_PAIRS], "val_rmse": 1.0, "data_root": "x"}
    (run / "run_info.json").write_text(json.dumps(info))
    (run / "config.yaml").write_text("MODEL: {}\n")
    (run / "model_best.pth").write_bytes(b"weights")
    k = len(KEYPOINT_NAMES)
    persons = [{"keypoints": np.full((k, 2), 10.0 + i + shift), "keypoint_scores": np.ones(k),
                "box": np.array([0.0, 0.0, 50.0, 50.0]), "score": 1.0} for i in range(len(names))]
    write_predictions(prediction_frame(names, persons, [(320, 180)] * len(names)),
                      run / "predictions_test.csv")
    return run


@pytest.fixture(scope="module")
def world(synthetic_data, tmp_path_factory):
    """Every kind of protected artefact, and the inputs of the commands."""
    base = tmp_path_factory.mktemp("world")
    session_ledger = os.environ.get(LEDGER_ENV)  # restored after the module (below)
    os.environ[LEDGER_ENV] = str(base / "ledger.jsonl")
    data = base / "data"
    shutil.copytree(synthetic_data, data)
    names = [line.split(",")[0] for line in (data / "sample_submission.csv").read_text()
             .splitlines()[1:]]
    runs = [_fake_run(base / "runs" / n, names, i) for i, n in enumerate(("a", "b"))]
    other = _fake_run(base / "runs" / "other", names, 5.0)
    aset = base / "augmented" / "demo"
    (aset / "images").mkdir(parents=True)
    (aset / "manifest.json").write_text("{}")
    (aset / "annotations.csv").write_text("image\n")
    shutil.copy(next((data / "images" / "train_imgs").iterdir()), aset / "images" / "a.jpg")
    (base / "pic.jpg").write_bytes((aset / "images" / "a.jpg").read_bytes())
    (base / "model.pth").write_bytes(b"weights")
    inputs = base / "inputs"
    inputs.mkdir()
    pred = inputs / "pred.csv"
    shutil.copy(runs[0] / "predictions_test.csv", pred)
    frames = [np.zeros((48, 64, 3), np.uint8) + i for i in range(3)]
    clip = base / "clipdir" / "overlay.mp4"
    write_video(clip, frames, 10.0)
    files = {
        "data csv": data / "train_df.csv",
        "data image": next((data / "images" / "train_imgs").iterdir()),
        "run record": runs[0] / "run_info.json",
        "run checkpoint": runs[0] / "model_best.pth",
        "run predictions": runs[0] / "predictions_test.csv",
        "other run predictions": other / "predictions_test.csv",
        "set annotations": aset / "annotations.csv",
        "set manifest": aset / "manifest.json",
        "image": base / "pic.jpg",
        "checkpoint": base / "model.pth",
        "input": pred,
        "input video": clip,
    }
    folders = {"data folder": data, "data images": data / "images", "run folder": runs[0],
               "augmentation set": aset}
    links = base / "links"
    links.mkdir()
    yield {"base": base, "data": data, "runs": runs, "set": aset, "pred": pred, "clip": clip,
            "files": files, "folders": folders, "links": links}
    if session_ledger is None:
        os.environ.pop(LEDGER_ENV, None)
    else:
        os.environ[LEDGER_ENV] = session_ledger


def _sha_all(root):
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink() and "links" not in p.parts:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _spellings(world, name, target):
    """The target directly, through ``..``, a symlink and (files) a hard link."""
    links = world["links"]
    dotdot = target.parent / ".." / target.parent.name / target.name
    out = {"direct": target, "dotdot": dotdot}
    link = links / f"sym_{name.replace(' ', '_')}{target.suffix}"
    if not link.is_symlink():
        link.symlink_to(target)
    out["symlink"] = link
    if target.is_file():
        hard = links / f"hard_{name.replace(' ', '_')}{target.suffix}"
        if not hard.exists():
            os.link(target, hard)
        out["hard link"] = hard
    return out


def _run(main, argv):
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: a usage error is a refusal too
        return exc.code


FILE_COMMANDS = {
    "smooth": lambda w, t: (smooth_cli.main, ["--pred", w["pred"], "--out", t]),
    "ensemble": lambda w, t: (ensemble_cli.main, ["--runs", *w["runs"], "--data-root", w["data"],
                                                  "--split", "test", "--samples", "0",
                                                  "--out", t]),
    "predict --out": lambda w, t: (predict_cli.main, ["--run", w["runs"][0], "--data-root",
                                                      w["data"], "--out", t]),
    "make_synthetic --video": lambda w, t: (synthetic_cli.main, [
        "--out", w["base"] / "new_synthetic", "--train", 2, "--test", 2, "--width", 64,
        "--height", 48, "--quiet", "--video", Path(t).with_suffix(".mp4")]),
    "demo --submission": lambda w, t: (_demo_main, ["--out", w["base"] / "demo",
                                                    "--submission", t]),
}

DIR_COMMANDS = {
    "augmentation --out": lambda w, t: (aug_cli.main, ["--data-root", w["data"], "--out", t,
                                                       "--sets", "demo"]),
    "make_synthetic --out": lambda w, t: (synthetic_cli.main, [
        "--out", t, "--train", 2, "--test", 2, "--width", 64, "--height", 48, "--quiet"]),
    "predict_video --out": lambda w, t: (video_cli.main, [w["clip"], "--runs", w["runs"][0],
                                                          "--out", t]),
    "check_data --audit-out": lambda w, t: (check_data_cli.main, [
        "--data-root", w["data"], "--audit", "--audit-out", t]),
}


def _demo_main(argv):
    from motion_keypoints.cli import demo

    return demo.main(argv)


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
def test_every_file_command_refuses_every_artefact_in_every_spelling(world, command, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(REPO)
    before = _sha_all(world["base"])
    tried = []
    for name, target in world["files"].items():
        if command == "make_synthetic --video" and target.suffix != ".csv":
            continue  # it writes <video>.mp4 and <video>.csv: the CSVs are what it can hit
        for how, path in _spellings(world, name, target).items():
            main, argv = FILE_COMMANDS[command](world, path)
            rc = _run(main, argv)
            tried.append((name, how, rc))
            assert rc != 0, f"{command} wrote over {name} ({how}: {path})"
            assert _sha_all(world["base"]) == before, f"{command} changed a file via {how} {name}"
    assert len(tried) >= 3 * 4
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: " in err


@pytest.mark.parametrize("command", sorted(DIR_COMMANDS))
def test_every_folder_command_refuses_every_artefact_folder(world, command, capsys):
    before = _sha_all(world["base"])
    for name, folder in world["folders"].items():
        for how, path in _spellings(world, name, folder).items():
            main, argv = DIR_COMMANDS[command](world, path)
            rc = _run(main, argv)
            assert rc != 0, f"{command} wrote into {name} ({how}: {path})"
            assert _sha_all(world["base"]) == before, f"{command} changed a file via {how} {name}"
    assert "Traceback" not in capsys.readouterr().err


def test_artefact_kind_knows_artefacts_anywhere(world):
    f = world["files"]
    assert artefact_kind(f["data csv"]) == "data folder"
    assert artefact_kind(world["data"] / "images" / ".." / "new.csv") == "data folder"
    assert artefact_kind(f["run record"]) == "run folder"
    assert artefact_kind(f["set manifest"]) == "augmentation set"
    assert artefact_kind(f["image"]) == "image"
    assert artefact_kind(f["checkpoint"]) == "checkpoint"
    assert artefact_kind(world["base"] / "inputs" / "new.csv") is None


# ------------------------------------------------------------------ the leaks of issue 16


def test_smooth_onto_the_labels_is_refused(world, capsys):
    assert smooth_cli.main(["--pred", str(world["runs"][0] / "predictions_test.csv"),
                            "--out", str(world["data"] / "train_df.csv")]) == 1
    assert "data folder" in capsys.readouterr().err


def test_ensemble_onto_another_data_folder_or_a_non_member_run(world, synthetic_data, capsys):
    other_data = world["base"] / "other_data"
    if not other_data.exists():
        shutil.copytree(synthetic_data, other_data)
    before = _sha_all(world["base"])
    for out in (other_data / "train_df.csv", world["base"] / "runs" / "other" /
                "predictions_test.csv", world["base"] / "runs" / "other" / "run_info.json"):
        rc = ensemble_cli.main(["--runs", *map(str, world["runs"]), "--data-root",
                                str(world["data"]), "--samples", "0", "--out", str(out)])
        assert rc == 1, out
    assert _sha_all(world["base"]) == before


def test_make_synthetic_video_beside_the_labels_is_refused(world, capsys):
    before = _sha_all(world["base"])
    rc = synthetic_cli.main(["--out", str(world["base"] / "syn2"), "--train", "2", "--test", "2",
                             "--width", "64", "--height", "48", "--quiet",
                             "--video", str(world["data"] / "train_df.mp4")])
    assert rc == 1 and _sha_all(world["base"]) == before
    assert not (world["data"] / "train_df.mp4").exists()


def test_predict_video_never_overwrites_its_input_video(world, capsys):
    before = _sha_all(world["base"])
    clip = world["clip"]
    argv = [str(clip), "--runs", str(world["runs"][0]), "--out", str(clip.parent)]
    assert video_cli.main(argv) == 1  # a folder the kit did not make
    assert video_cli.main(argv + ["--overwrite"]) == 1  # and the video is its input
    assert _sha_all(world["base"]) == before
    assert "an input of this command" in capsys.readouterr().err


def test_training_into_the_data_folder_is_refused_before_anything(world):
    data = world["data"]
    for out in (data, data / "runs" / "r", data.parent):
        with pytest.raises(OutputError):
            check_run_place(out, data)
    with pytest.raises(OutputError, match="data folder"):
        check_run_place(data)  # without knowing DATA.ROOT: it is a data folder
    before = _sha_all(data)
    with pytest.raises(OutputError):
        clear_run_folder(data)
    assert _sha_all(data) == before


def test_train_clear_with_output_dir_the_data_folder_deletes_nothing(world, capsys):
    from motion_keypoints.cli import train as train_cli

    data = world["data"]
    before = _sha_all(data)
    rc = train_cli.main(["--config-file", str(REPO / "configs" / "tiny-cpu.yaml"), "--clear",
                         "OUTPUT_DIR", str(data), "DATA.ROOT", str(data)])
    assert rc == 1 and _sha_all(data) == before
    assert not (data / ".lock").exists()
    assert "error: OUTPUT_DIR" in capsys.readouterr().err


# ------------------------------------------------------------------ re-runs and --overwrite


def test_rerun_replaces_its_own_output_and_foreign_files_need_overwrite(world, tmp_path, capsys):
    out = tmp_path / "smoothed.csv"
    argv = ["--pred", str(world["pred"]), "--out", str(out)]
    assert smooth_cli.main(argv) == 0
    first = out.read_bytes()
    assert smooth_cli.main(argv) == 0 and out.read_bytes() == first  # idempotent re-run
    out.write_text("the user's own notes\n")  # changed since: no longer the kit's output
    assert smooth_cli.main(argv) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "the user's own notes\n"
    assert smooth_cli.main(argv + ["--overwrite"]) == 0 and out.read_bytes() == first
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("x\n")
    assert smooth_cli.main(["--pred", str(world["pred"]), "--out", str(foreign)]) == 1
    assert foreign.read_text() == "x\n"
    # another kind of output at the same path is not "its own": refused too
    assert smooth_cli.main(["--pred", str(world["pred"]), "--out", str(tmp_path / "s2.csv")]) == 0
    assert smooth_cli.main(["--pred", str(world["pred"]), "--out", str(tmp_path / "r.json"),
                            "--report", str(tmp_path / "s2.csv")]) in (1, 2)


def test_overwrite_never_allows_an_artefact_or_an_input(world, capsys):
    before = _sha_all(world["base"])
    for target in (world["files"]["data csv"], world["files"]["image"],
                   world["files"]["run predictions"], world["files"]["checkpoint"],
                   world["pred"], world["files"]["set annotations"]):
        rc = smooth_cli.main(["--pred", str(world["pred"]), "--out", str(target), "--overwrite"])
        assert rc == 1, target
    assert _sha_all(world["base"]) == before
    assert "Traceback" not in capsys.readouterr().err


def test_output_file_leaves_nothing_on_an_error(tmp_path):
    out = tmp_path / "o.csv"
    out_tmp = []
    with pytest.raises(OSError):
        with output_file(out, "x") as tmp:
            out_tmp.append(tmp)
            tmp.write_text("partial")
            raise OSError(28, "No space left on device", str(tmp))
    assert not out.exists() and not out_tmp[0].exists() and list(tmp_path.iterdir()) == []


def test_predict_tag_and_out_paths(tmp_path):
    from motion_keypoints.io.predictions import prediction_paths

    run = tmp_path / "run"
    assert prediction_paths(run, "test") == (run / "predictions_test.csv",
                                             run / "predictions_test_noflip.csv")
    assert prediction_paths(run, "val", tag="area")[0] == run / "predictions_val_area.csv"
    assert prediction_paths(run, "test", out=tmp_path / "p.csv")[1] == tmp_path / "p_noflip.csv"
    with pytest.raises(ValueError):
        prediction_paths(run, "test", out=tmp_path / "p.csv", tag="x")


# ------------------------------------------------------------------ --clear


def test_clear_removes_only_what_the_run_wrote(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, ["a.jpg"])
    (run / "metrics.json").write_text("{}")
    (run / "inference").mkdir()
    (run / "inference" / "cache.pkl").write_bytes(b"x")
    (run / "notes.txt").write_text("the user's")
    (run / "mine").mkdir()
    (run / "mine" / "keep.csv").write_text("x")
    kept = clear_run_folder(run)
    assert sorted(kept) == ["mine", "notes.txt"]
    assert sorted(p.name for p in run.iterdir()) == ["mine", "notes.txt"]


def test_clear_refuses_a_folder_holding_data_or_a_set(tmp_path, synthetic_data):
    run = tmp_path / "run"
    _fake_run(run, ["a.jpg"])
    shutil.copytree(synthetic_data, run / "data")
    with pytest.raises(OutputError, match="holds the data folder"):
        clear_run_folder(run)
    assert (run / "run.json").is_file() and (run / "data" / "train_df.csv").is_file()


def test_ledger_compaction_keeps_only_live_entries(tmp_path, monkeypatch):
    """The ledger does not grow forever: past its size limit it is rewritten with the last entry
    of each file that still exists, and a re-run still finds its own output."""
    from motion_keypoints.io import ledger, outputs

    monkeypatch.setenv(ledger.LEDGER_ENV, str(tmp_path / "ledger.jsonl"))
    monkeypatch.setattr(ledger, "LEDGER_COMPACT_BYTES", 3000)  # read where the ledger is kept
    out = tmp_path / "out"
    out.mkdir()
    for i in range(40):
        outputs.write_text(out / f"f{i}.csv", "a,b\n", kind="test table")
        if i % 2:
            os.remove(out / f"f{i}.csv")
    def entries():
        return [json.loads(x) for x in (tmp_path / "ledger.jsonl").read_text().splitlines()]

    lines = entries()  # rewritten on its own past the limit (entries since then appended)
    assert "compacted" in lines[0] and len(lines) < 40  # the rewrite's own first line
    outputs.compact_ledger()
    lines = entries()
    paths = [e["path"] for e in lines[1:]]
    assert len(set(paths)) == len(paths) == 20  # the last entry of each live file, no other
    assert all(os.path.exists(p) for p in paths)
    outputs.write_text(out / "f38.csv", "a,b\n", kind="test table")  # its own re-run: allowed


def test_ledger_appends_beside_a_compaction_are_kept(tmp_path, monkeypatch):
    """A writer that opened the ledger just before another process compacted it (the file
    replaced under it) writes into the new file, not the replaced one; and a reader that had
    read the old file reads the new one from its start."""
    import fcntl

    from motion_keypoints.io import ledger, outputs

    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv(ledger.LEDGER_ENV, str(path))
    out = tmp_path / "out"
    out.mkdir()
    for i in range(5):
        outputs.write_text(out / f"f{i}.csv", "a,b\n", kind="test table")
    assert len(ledger.ledger()) == 5  # this process has read the old file
    real_flock, calls = fcntl.flock, []

    def flock_after_another_compaction(f, op):
        if not calls:  # the other process compacts between our open() and our lock
            calls.append(op)
            ledger._compact(path)
        return real_flock(f, op)

    monkeypatch.setattr(ledger.fcntl, "flock", flock_after_another_compaction)
    outputs.write_text(out / "late.csv", "a,b\n", kind="test table")
    monkeypatch.setattr(ledger.fcntl, "flock", real_flock)
    recorded = ledger.ledger()
    assert str((out / "late.csv").resolve()) in recorded or str(out / "late.csv") in recorded
    assert len(recorded) == 6
    outputs.write_text(out / "late.csv", "c,d\n", kind="test table")  # its own re-run: allowed


def test_a_ledger_of_live_entries_is_not_rewritten_at_every_append(tmp_path, monkeypatch):
    """Past the size limit with every recorded file still there, a compaction frees nothing:
    the next one waits until the ledger doubled (a few rewrites, not one per append)."""
    from motion_keypoints.io import ledger, outputs

    monkeypatch.setenv(ledger.LEDGER_ENV, str(tmp_path / "ledger.jsonl"))
    monkeypatch.setattr(ledger, "LEDGER_COMPACT_BYTES", 3000)
    rewrites, compact = [], ledger._compact
    monkeypatch.setattr(ledger, "_compact", lambda p: rewrites.append(1) or compact(p))
    out = tmp_path / "out"
    out.mkdir()
    for i in range(80):  # ~150 bytes an entry: 12 kB of live entries
        outputs.write_text(out / f"f{i}.csv", "a,b\n", kind="test table")
    assert 1 <= len(rewrites) <= 3, len(rewrites)
    assert len(ledger.ledger()) == 80
