"""The command-line conventions (issue 9 items 4 and 5): every --help is clean, user mistakes are
one line and exit 1, usage errors exit 2, bugs keep their traceback."""

import errno
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from motion_keypoints.cli import _run
from motion_keypoints.cli.check_data import main as check_data_main
from motion_keypoints.cli.demo import main as demo_main
from motion_keypoints.cli.evaluate import main as evaluate_main
from motion_keypoints.cli.smooth import main as smooth_main
from motion_keypoints.meta import COORD_COLUMNS

SCRIPTS = sorted(p.stem for p in (REPO / "code").glob("*.py"))


def _help(script):
    return subprocess.run([sys.executable, str(REPO / "code" / f"{script}.py"), "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def helps():
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(SCRIPTS, pool.map(_help, SCRIPTS)))


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.slow
def test_help_exits_0_without_warnings(helps, script):
    proc = helps[script]
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    assert "Warning" not in proc.stderr and "warning" not in proc.stderr.lower(), proc.stderr


B_SCRIPTS = ("augmentation", "check_data", "check_submission", "ensemble", "evaluate", "demo",
             "smooth")


@pytest.mark.parametrize("script", B_SCRIPTS)
@pytest.mark.slow
def test_help_follows_the_conventions(helps, script):
    text = helps[script].stdout
    for old in ("--config ", "--max-shown", "--no-progress"):
        assert old not in text
    flat = " ".join(text.split())
    for opt in ("--out", "--workers", "--max-problems", "--quiet", "--config-file"):
        if opt in text:
            # the option's help says its default (or that it is required)
            after = flat.split(opt, 2)[-1][:400]
            assert "default" in after or "required" in after, (opt, after)


# ------------------------------------------------------------------- the wrapper


def test_wrapper_maps_path_errors_to_one_line(capsys):
    def body(argv):
        raise PermissionError(errno.EACCES, "Permission denied", "/x/out.csv")

    assert _run.run_command(body, []) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write /x/out.csv: permission denied; choose")
    assert len(err.strip().splitlines()) == 1

    def folder(argv):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", "/x/dir")

    assert _run.run_command(folder, []) == 1
    assert "cannot write /x/dir: it is a folder" in capsys.readouterr().err


def test_wrapper_keeps_the_traceback_of_bugs():
    def bug(argv):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        _run.run_command(bug, [])

    def os_bug(argv):
        raise OSError(errno.EIO, "I/O error")  # no path: not the user's to fix

    with pytest.raises(OSError):
        _run.run_command(os_bug, [])


def test_wrapper_sets_up_the_console():
    import logging

    _run.run_command(lambda argv: 0, [])
    handlers = logging.getLogger("motion_keypoints").handlers
    assert any(type(h).__name__ == "_TqdmHandler" for h in handlers)


def test_unwritable_output_through_a_real_command_is_one_line(tmp_path):
    """An OSError from deep inside a command (a read-only place found only when writing)."""
    pred = _pred_csv(tmp_path / "p.csv")
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, motion_keypoints.cli.smooth as s, motion_keypoints.io.outputs as g\n"
         "g._check_folder_writable = lambda *a: None\n"
         "import motion_keypoints.utils as u\n"
         "def boom(path, *a, **k):\n"
         "    raise PermissionError(13, 'Permission denied', str(path))\n"
         "u.atomic_path = boom\n"
         "sys.exit(s.main(sys.argv[1:]))",
         "--pred", str(pred), "--out", str(tmp_path / "o.csv")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: cannot write {tmp_path / 'o.csv'}" in proc.stderr


# ------------------------------------------------------------------- check_data


def test_check_data_needs_a_data_root_and_renamed_flags(capsys, synthetic_data):
    with pytest.raises(SystemExit) as info:
        check_data_main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        check_data_main(["--data-root", str(synthetic_data), "--max-shown", "3"])
    assert info.value.code == 2
    capsys.readouterr()


def test_check_data_missing_root_is_exit_1_without_traceback(tmp_path, capsys):
    assert check_data_main(["--data-root", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "data root not found" in err and "Traceback" not in err


def test_max_problems_0_shows_all(tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    rows = "\n".join(f"img{i}.jpg," + ",".join(["oops"] * len(COORD_COLUMNS)) for i in range(3))
    header = "image," + ",".join(COORD_COLUMNS)
    (root / "train_df.csv").write_text(header + "\n" + rows + "\n")
    (root / "sample_submission.csv").write_text(header + "\n")
    assert check_data_main(["--data-root", str(root), "--max-problems", "2",
                            "--check-images", "exists"]) == 1
    short = capsys.readouterr().err
    assert check_data_main(["--data-root", str(root), "--max-problems", "0",
                            "--check-images", "exists"]) == 1
    full = capsys.readouterr().err
    assert "more" in short and "... and" not in full
    assert full.count("'oops'") == 3 * len(COORD_COLUMNS)


@pytest.mark.parametrize("where", ["file", "images", "csv"])
def test_audit_out_is_checked_before_any_work(synthetic_data, tmp_path, capsys, where):
    (tmp_path / "a_file").write_text("x")
    out = {"file": tmp_path / "a_file", "images": synthetic_data / "images" / "audit",
           "csv": tmp_path / "audit.csv"}[where]
    code = check_data_main(["--data-root", str(synthetic_data), "--audit", "--audit-out", str(out),
                            "--check-images", "exists"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: --audit-out") and "Traceback" not in err
    assert not (synthetic_data / "images" / "audit").exists()


# ------------------------------------------------------------------- smooth, evaluate, demo


def _pred_csv(path, n=4):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.uniform(10, 100, (n, len(COORD_COLUMNS))), columns=list(COORD_COLUMNS))
    df.insert(0, "image", [f"clip1_cam1_{i:04d}.jpg" for i in range(n)])
    df.to_csv(path, index=False)
    return path


def test_smooth_refuses_out_equal_to_pred(tmp_path, capsys):
    pred = _pred_csv(tmp_path / "p.csv")
    before = pred.read_bytes()
    for out in (pred, tmp_path / "x" / ".." / "p.csv"):
        assert smooth_main(["--pred", str(pred), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: --out") and "Traceback" not in err
    assert pred.read_bytes() == before


def test_smooth_bad_inputs_and_usage(tmp_path, capsys):
    pred = _pred_csv(tmp_path / "p.csv")
    out = tmp_path / "o.csv"
    assert smooth_main(["--pred", str(tmp_path / "missing.csv"), "--out", str(out)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text(pred.read_text().replace(pred.read_text().splitlines()[2].split(",")[1], "x", 1))
    assert smooth_main(["--pred", str(bad), "--out", str(out)]) == 1
    assert "bad.csv" in capsys.readouterr().err
    assert smooth_main(["--pred", str(pred), "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        smooth_main(["--pred", str(pred), "--out", str(out), "--tune-pred", str(pred)])
    assert info.value.code == 2
    assert not out.exists()
    assert smooth_main(["--pred", str(pred), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 4


def test_evaluate_bad_input_is_exit_1(tmp_path, capsys):
    pred = _pred_csv(tmp_path / "p.csv")
    assert evaluate_main(["--pred", str(pred), "--truth", str(tmp_path / "none.csv")]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_demo_out_a_file_is_refused_before_work(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert demo_main(["--out", str(tmp_path / "f")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and "is a file" in err
    assert demo_main(["--out", str(tmp_path / "d"), "--submission", str(tmp_path)]) == 1
    assert "--submission" in capsys.readouterr().err
