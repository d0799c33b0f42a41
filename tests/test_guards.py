"""io.outputs checks of a path's kind and place: a file where a file is expected, a folder where
a folder is, a writable place; the data folder, its images, sets and checkpoints refused."""

import os

import pytest

from motion_keypoints.io.outputs import (
    OutputError,
    check_output_dir,
    check_output_file,
    command_policy,
    register_inputs,
)


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    (root / "images" / "train_imgs").mkdir(parents=True)
    for name in ("train_df.csv", "sample_submission.csv", "label_overrides.csv"):
        (root / name).write_text("image\n")
    (root / "images" / "train_imgs" / "a.jpg").write_bytes(b"x")
    return root


@pytest.mark.parametrize("rel", ["train_df.csv", "sample_submission.csv", "test_labels.csv",
                                 "label_overrides.csv", "images/train_imgs/a.jpg",
                                 "images/new/x.csv", "images/../train_df.csv",
                                 "predictions.csv"])
def test_nothing_is_written_into_a_data_folder(data, rel):
    with pytest.raises(OutputError, match="lies in the data folder"):
        check_output_file(data / rel, "x")


def test_symlink_and_hard_link_to_an_input_are_refused(data, tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to(data / "train_df.csv")
    with pytest.raises(OutputError, match="data folder"):
        check_output_file(link, "x")
    hard = tmp_path / "hard.csv"
    os.link(data / "train_df.csv", hard)
    with pytest.raises(OutputError, match="hard links"):
        check_output_file(hard, "x")


def test_runs_checkpoints_and_explicit_inputs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model_best.pth").write_bytes(b"x")
    (run / "run.json").write_text("{}")
    for path in (run / "model_best.pth", run / "run_info.json", tmp_path / "any.pth"):
        with pytest.raises(OutputError):
            check_output_file(path, "x")
    pred = tmp_path / "pred.csv"
    pred.write_text("x")
    with command_policy("test"):
        register_inputs(pred)
        with pytest.raises(OutputError, match="an input of this command"):
            check_output_file(tmp_path / "." / "pred.csv", "x")
        assert check_output_file(run / "smoothed.csv", "x") == run / "smoothed.csv"


def test_augmentation_set_folder_is_protected(tmp_path):
    s = tmp_path / "aug" / "demo"
    s.mkdir(parents=True)
    (s / "manifest.json").write_text("{}")
    with pytest.raises(OutputError, match="augmentation set"):
        check_output_file(s / "images" / "x.jpg", "x")


def test_file_and_folder_kinds(tmp_path):
    (tmp_path / "f.csv").write_text("x")
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        check_output_file(tmp_path, "x")
    with pytest.raises(OutputError, match="is a file; give a folder"):
        check_output_dir(tmp_path / "f.csv", "x")
    with pytest.raises(OutputError, match="looks like a file name"):
        check_output_dir(tmp_path / "new.csv", "x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_file(tmp_path / "f.csv" / "out.csv", "x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "f.csv" / "sub" / "deeper", "x")
    assert check_output_file(tmp_path / "new" / "deep" / "out.csv", "x")
    assert check_output_dir(tmp_path / "new" / "dir", "x")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_read_only_folder_is_refused(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes anyway: simulate the read-only disk
            import tempfile

            def refuse(*a, **k):
                raise PermissionError(13, "Read-only file system")

            monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
        with pytest.raises(OutputError, match="cannot write in .*ro.*choose a writable place"):
            check_output_file(ro / "out.csv", "x")
        with pytest.raises(OutputError, match="cannot write in"):
            check_output_dir(ro / "sub", "x")
    finally:
        ro.chmod(0o755)
    assert not list(ro.iterdir())
