"""io.guards: no output path may be an input; outputs are the right kind and writable."""

import os

import pytest

from motion_keypoints.io.guards import (
    OutputError,
    check_output,
    check_writable_dir,
    check_writable_file,
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
                                 "label_overrides.csv", "images", "images/train_imgs/a.jpg",
                                 "images/new/x.csv", "images/../train_df.csv"])
def test_data_inputs_are_refused(data, rel):
    with pytest.raises(OutputError, match="would overwrite the data folder's"):
        check_output(data / rel, data_root=data)


def test_other_places_in_the_data_folder_are_fine(data):
    assert check_output(data / "predictions.csv", data_root=data) == data / "predictions.csv"


def test_symlink_and_hard_link_to_an_input_are_refused(data, tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to(data / "train_df.csv")
    with pytest.raises(OutputError):
        check_output(link, data_root=data)
    hard = tmp_path / "hard.csv"
    os.link(data / "train_df.csv", hard)
    with pytest.raises(OutputError):
        check_output(hard, data_root=data)


def test_runs_checkpoints_and_explicit_inputs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model_best.pth").write_bytes(b"x")
    for path in (run / "model_best.pth", run / "run_info.json", tmp_path / "any.pth"):
        with pytest.raises(OutputError):
            check_output(path, runs=[run])
    pred = tmp_path / "pred.csv"
    pred.write_text("x")
    with pytest.raises(OutputError, match="its input"):
        check_output(tmp_path / "." / "pred.csv", inputs=[pred])
    assert check_output(run / "smoothed.csv", runs=[run], inputs=[pred])


def test_augmentation_set_folder_is_protected(tmp_path):
    s = tmp_path / "aug" / "demo"
    s.mkdir(parents=True)
    with pytest.raises(OutputError, match="augmentation set demo"):
        check_output(s / "images" / "x.jpg", aug_sets=[s])


def test_file_and_folder_kinds(tmp_path):
    (tmp_path / "f.csv").write_text("x")
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        check_writable_file(tmp_path)
    with pytest.raises(OutputError, match="is a file; give a folder"):
        check_writable_dir(tmp_path / "f.csv")
    with pytest.raises(OutputError, match="looks like a file name"):
        check_writable_dir(tmp_path / "new.csv")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable_file(tmp_path / "f.csv" / "out.csv")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable_dir(tmp_path / "f.csv" / "sub" / "deeper")
    assert check_writable_file(tmp_path / "new" / "deep" / "out.csv")
    assert check_writable_dir(tmp_path / "new" / "dir")
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
            check_writable_file(ro / "out.csv")
        with pytest.raises(OutputError, match="cannot write in"):
            check_writable_dir(ro / "sub")
    finally:
        ro.chmod(0o755)
    assert not list(ro.iterdir())
