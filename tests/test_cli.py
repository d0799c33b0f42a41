"""The command-line conventions (issue 9 items 4 and 5): every --help is clean, user mistakes are
one line and exit 1, usage errors exit 2, bugs keep their traceback."""

import errno
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


# ------------------------------------------------------------------- one command, shared options


def _cli_main(argv):
    from motion_keypoints.cli.main import main

    return main(argv)


def test_one_command_lists_every_command_once(capsys):
    from motion_keypoints.cli.main import COMMANDS

    assert set(COMMANDS) == set(SCRIPTS)  # every code/<command>.py is a sub-command
    assert _cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: motion-keypoints COMMAND")
    for name in SCRIPTS:
        lines = [ln for ln in out.splitlines() if ln.split()[:1] == [name]]
        assert len(lines) == 1 and len(lines[0].split()) > 2, (name, out)
    assert _cli_main([]) == 2  # no command: a usage error with the list
    assert "commands:" in capsys.readouterr().err


def _options(text):
    return sorted(set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text)))


@pytest.mark.parametrize("name", SCRIPTS)
def test_sub_command_help_is_the_command_help(name, capsys):
    import importlib

    with pytest.raises(SystemExit) as info:
        importlib.import_module(f"motion_keypoints.cli.{name}").main(["--help"])
    assert info.value.code == 0
    own = capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        _cli_main([name.replace("_", "-"), "--help"])  # either spelling
    assert info.value.code == 0
    sub = capsys.readouterr().out
    assert own.startswith(f"usage: {name}.py ")
    assert sub.startswith(f"usage: motion-keypoints {name} ")
    assert _options(sub) == _options(own) and "--help" in _options(own)


def test_unknown_command_is_one_error_line_with_the_closest_name(capsys):
    assert _cli_main(["trian", "--config-file", "x.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "unknown command 'trian'" in err and "did you mean 'train'" in err
    assert _cli_main(["zzzz"]) == 1
    err = capsys.readouterr().err
    assert "did you mean" not in err and "motion-keypoints --help" in err


def test_sub_command_user_mistake_goes_through_the_boundary(tmp_path, capsys):
    args = ["--pred", str(tmp_path / "nope.csv"), "--truth", str(tmp_path / "t.csv")]
    assert _cli_main(["evaluate", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope.csv" in err
    assert _cli_main(["--debug", "evaluate", *args]) == 1  # a leading --debug reaches it
    assert "Traceback" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # usage errors stay argparse's (exit 2)
        _cli_main(["ensemble", "--method", "vote"])
    assert info.value.code == 2
    assert "usage: motion-keypoints ensemble" in capsys.readouterr().err


def test_python_m_and_the_console_script_dispatch(tmp_path):
    import shutil

    script = shutil.which("motion-keypoints", path=str(Path(sys.executable).parent))
    assert script, "motion-keypoints is not installed: pip install -e . (scripts/setup_env.sh)"
    pred = _pred_csv(tmp_path / "p.csv")
    for cmd in ([sys.executable, "-m", "motion_keypoints"], [script]):
        proc = subprocess.run([*cmd, "smooth", "--pred", str(pred), "--out", str(pred)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: --out") and proc.stderr.count("\n") == 1
        proc = subprocess.run([*cmd, "--help"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and "predict_video" in proc.stdout


def test_shared_options_parse_as_before():
    from motion_keypoints.cli import predict, predict_video

    a = predict.build_parser().parse_args(["--run", "R", "--data-root", "D"])
    assert (a.run, a.data_root, a.workers, a.quiet, a.out, a.tag, a.person_rule, a.batch_size,
            a.checkpoint, a.split) == ("R", "D", 0, False, None, None, "score", 4, "best", "test")
    a = predict.build_parser().parse_args(["--run", "R", "--data-root", "D", "--workers", "3",
                                           "--quiet", "--out", "o.csv", "--person-rule",
                                           "longest", "--batch-size", "2"])
    assert (a.workers, a.quiet, a.out, a.person_rule, a.batch_size) == (3, True, "o.csv",
                                                                        "longest", 2)
    v = predict_video.build_parser()
    a = v.parse_args(["clip.mp4", "--runs", "A", "B", "--out", "O"])
    assert (a.runs, a.out, a.rule, a.batch_size, a.checkpoint, a.quiet) == (
        ["A", "B"], "O", "track", 4, "best", False)
    assert v.parse_args(["c", "--runs", "A", "--out", "O", "--rule", "area"]).rule == "area"


@pytest.mark.parametrize("argv", [
    ["--run", "R", "--data-root", "D", "--workers", "-1"],
    ["--run", "R", "--data-root", "D", "--batch-size", "0"],
    ["--run", "R", "--data-root", "D", "--person-rule", "at"],  # only from --person-at
    ["--run", "R"],  # --data-root is required
    ["--run", "R", "--data-root", "D", "--out", "o.csv", "--tag", "t"],
])
def test_shared_options_refuse_as_before(argv, capsys):
    from motion_keypoints.cli import predict

    with pytest.raises(SystemExit) as info:
        predict.build_parser().parse_args(argv)
    assert info.value.code == 2
    capsys.readouterr()


def test_person_at_and_box_are_parsed_once_for_both_commands(capsys):
    from motion_keypoints.cli import options, predict_video

    p = predict_video.build_parser()
    assert options.parse_person_at(p, None, None) is None
    assert options.parse_person_at(p, "10,20.5", None) == [10.0, 20.5]
    assert options.parse_person_at(p, None, "1,2,30,40") == [1.0, 2.0, 30.0, 40.0]
    for at, box, says in (("1,2", "1,2,3,4", "not both"), ("1", None, "--person-at 1: give X,Y"),
                          (None, "5,5,1,1", "X1<X2"), ("a,b", None, "--person-at a,b")):
        with pytest.raises(SystemExit) as info:
            options.parse_person_at(p, at, box)
        assert info.value.code == 2
        assert says in capsys.readouterr().err


def test_no_cli_function_is_over_80_lines():
    import ast

    long = []
    for path in sorted((REPO / "code" / "motion_keypoints" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{path.name}:{node.name} ({n} lines)")
    assert not long, long
