"""The one error boundary (cli/_run.run_command) and the whole config checked before work
(models/config_check.py through setup_cfg): each user mistake is exit 1 and exactly one
``error:`` line naming the key or file, without a traceback, and nothing is written.

Each case is run through train.py's ``main`` in-process (a couple through a real subprocess for
the "no traceback" contract). On the code before this check they end in tracebacks, in a CPU
run of a GPU config, or in a run folder written before the crash."""

from pathlib import Path

import pytest
import torch
from conftest import run_script

from motion_keypoints.cli import train
from motion_keypoints.cli._run import run_command
from motion_keypoints.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny-cpu.yaml"
TINY_HRNET = REPO / "configs" / "tiny-hrnet.yaml"

#: A few iterations, so that a mistake the old code only met late still ends quickly there.
SHORT = ["SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "0",
         "TEST.EVAL_PERIOD", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "DATA.VAL_FRACTION", "0.2"]


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, f"expected exactly one error line, got:\n{err}"
    assert "Traceback" not in err, err
    return lines[0]


def train_mistake(capsys, tmp_path, data, config, opts, device=("MODEL.DEVICE", "cpu")) -> str:
    """train.py with one mistake: exit 1, one error line, no traceback, no run folder."""
    out = tmp_path / "run"
    argv = ["--config-file", str(config), *SHORT, "DATA.ROOT", str(data), "OUTPUT_DIR", str(out),
            *device, *opts]
    rc = train.main(argv)
    err = capsys.readouterr().err
    assert rc == 1, err
    line = one_error_line(err)
    assert not out.exists(), f"{out} was written before the error: {sorted(out.iterdir())}"
    return line


# ------------------------------------------------------------------------- config mistakes

def test_yaml_syntax_error_names_the_file_and_line(capsys, tmp_path, synthetic_data):
    config = tmp_path / "broken.yaml"
    config.write_text(f'_BASE_: "{TINY}"\nSOLVER:\n  BASE_LR: [0.01\n  MAX_ITER: 3\n')
    line = train_mistake(capsys, tmp_path, synthetic_data, config, [])
    assert str(config) in line and "line " in line and "YAML" in line


def test_unknown_key_in_the_config_file_names_it_with_a_suggestion(capsys, tmp_path,
                                                                    synthetic_data):
    config = tmp_path / "typo.yaml"
    config.write_text(f'_BASE_: "{TINY}"\nDATA:\n  AUGSET: "demo"\n')
    line = train_mistake(capsys, tmp_path, synthetic_data, config, [])
    assert str(config) in line and "DATA.AUGSET" in line and "did you mean DATA.AUG_SET" in line


@pytest.mark.parametrize("opts, expected", [
    (["SOLVER.MAX_ITER", "abc"], "SOLVER.MAX_ITER is 'abc': it must be an integer"),
    (["SOLVER.BASE_LR"], "KEY VALUE pairs"),
    (["SOLVER.BASE_LR", "-0.02"], "SOLVER.BASE_LR is -0.02: it must be a number, > 0"),
    (["SOLVER.IMS_PER_BATCH", "0"], "SOLVER.IMS_PER_BATCH is 0"),
    (["SOLVER.STEPS", "(300, 200)"], "SOLVER.STEPS"),
    (["DATA.BBOX_MARGIN", "-1.0"], "DATA.BBOX_MARGIN"),
])
def test_yacs_errors_and_out_of_range_numbers(capsys, tmp_path, synthetic_data, opts, expected):
    assert expected in train_mistake(capsys, tmp_path, synthetic_data, TINY, opts)


def test_a_device_that_is_not_there(capsys, tmp_path, synthetic_data):
    line = train_mistake(capsys, tmp_path, synthetic_data, TINY, [],
                         device=("MODEL.DEVICE", "gpu"))
    assert "MODEL.DEVICE 'gpu' is not a device" in line and "cuda" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_cuda_on_a_machine_without_cuda_suggests_the_cpu(capsys, tmp_path, synthetic_data):
    line = train_mistake(capsys, tmp_path, synthetic_data, TINY, [],
                         device=("MODEL.DEVICE", "cuda"))
    assert "MODEL.DEVICE cuda" in line and "MODEL.DEVICE cpu" in line


@pytest.mark.parametrize("key, name, close", [
    ("MODEL.META_ARCHITECTURE", "GeneralizedRCN", "GeneralizedRCNN"),
    ("MODEL.BACKBONE.NAME", "build_resnet_fpn_backbon", "build_resnet_fpn_backbone"),
    ("MODEL.ROI_HEADS.NAME", "StandardROIHead", "StandardROIHeads"),
    ("MODEL.ROI_KEYPOINT_HEAD.NAME", "KRCNNConvDeconvUpsample", "KRCNNConvDeconvUpsampleHead"),
])
def test_unknown_model_parts_are_checked_against_detectron2s_registries(
        capsys, tmp_path, synthetic_data, key, name, close):
    line = train_mistake(capsys, tmp_path, synthetic_data, TINY, [key, name])
    assert f"{key} '{name}'" in line and f"did you mean {close}" in line


@pytest.mark.parametrize("opts, expected", [
    (["MODEL.HEATMAP.BACKBONE", "hrnet_w33"], "did you mean hrnet_w32"),
    (["MODEL.HEATMAP.INPUT_SIZE", "(100, 128)"], "multiple of 32"),
    (["MODEL.HEATMAP.DECODE", "darkk"], "MODEL.HEATMAP.DECODE 'darkk' is not a decode method"),
])
def test_heatmap_backbone_input_size_and_decode_method(capsys, tmp_path, synthetic_data, opts,
                                                       expected):
    line = train_mistake(capsys, tmp_path, synthetic_data, TINY_HRNET, opts)
    assert opts[0] in line and expected in line


# ------------------------------------------------------------------------------- weights

def _truncated_checkpoint(path: Path) -> Path:
    torch.save({"model": {"w": torch.zeros(256, 256)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted download or copy
    return path


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_unreadable_weights_name_the_file(capsys, tmp_path, synthetic_data, kind):
    weights = tmp_path / "model.pth"
    if kind == "text":
        weights.write_text("<html>404 not found</html>\n")
    else:
        _truncated_checkpoint(weights)
    line = train_mistake(capsys, tmp_path, synthetic_data, TINY, ["MODEL.WEIGHTS", str(weights)])
    assert f"MODEL.WEIGHTS {weights}: cannot be read as a checkpoint" in line


# --------------------------------------------------------------------------- the boundary

class _Failing(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise UserError(f"images/frame_{i}.jpg: cannot be decoded; re-export it")


def test_a_kit_error_raised_in_a_dataloader_worker_is_its_one_line(capsys):
    def body(argv):
        loader = torch.utils.data.DataLoader(_Failing(), batch_size=1, num_workers=1)
        next(iter(loader))

    assert run_command(body, []) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == "error: images/frame_0.jpg: cannot be decoded; re-export it"


def test_yacs_errors_from_config_code_are_one_line_and_other_keyerrors_stay_bugs(capsys):
    from yacs.config import CfgNode

    def config_mistake(argv):
        CfgNode({"A": 1}).merge_from_list(["B", "2"])

    assert run_command(config_mistake, []) == 1
    assert "Non-existent key: B" in one_error_line(capsys.readouterr().err)

    def bug(argv):
        return {}["missing"]

    with pytest.raises(KeyError):
        run_command(bug, [])


def test_a_yaml_error_anywhere_names_the_file_and_line(capsys, tmp_path):
    import yaml

    broken = tmp_path / "augmentation.yaml"
    broken.write_text("sets:\n  demo: {ops: [flip\n")

    def body(argv):
        with open(broken) as f:
            yaml.safe_load(f)

    assert run_command(body, []) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(broken) in line and "line 3" in line


def test_debug_still_shows_the_traceback(capsys):
    def body(argv):
        raise UserError("a user's mistake")

    assert run_command(body, ["--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: a user's mistake" in err


# ------------------------------------------------------------------- as a user runs it

@pytest.mark.parametrize("config, opts, expected", [
    ("broken", [], "YAML syntax error"),
    (TINY_HRNET, ["MODEL.HEATMAP.DECODE", "argmx"], "did you mean argmax"),
])
def test_no_traceback_from_the_real_command(tmp_path, synthetic_data, config, opts, expected):
    if config == "broken":
        config = tmp_path / "broken.yaml"
        config.write_text("MODEL:\n  DEVICE: 'cpu\n")
    out = tmp_path / "run"
    proc = run_script("train", "--config-file", config, *SHORT, "DATA.ROOT", synthetic_data,
                      "OUTPUT_DIR", out, "MODEL.DEVICE", "cpu", *opts, check=False, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert expected in one_error_line(proc.stderr)
    assert not out.exists()


def test_predict_with_a_truncated_checkpoint_names_the_file(capsys, tmp_path, synthetic_data):
    from motion_keypoints.cli import predict
    from motion_keypoints.engine.config import setup_cfg

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(setup_cfg(str(TINY), ["OUTPUT_DIR", str(run)]).dump())
    (run / "run_info.json").write_text('{"family": "rcnn"}')
    weights = _truncated_checkpoint(run / "model_best.pth")
    before = sorted(p.name for p in run.iterdir())
    rc = predict.main(["--run", str(run), "--data-root", str(synthetic_data)])
    assert rc == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"{weights}: cannot be read as a checkpoint" in line
    assert sorted(p.name for p in run.iterdir()) == before  # no predictions written


@pytest.mark.parametrize("argv", [["-m", "motion_keypoints.cli.main", "--help"],
                                  ["code/predict.py", "--help"]])
def test_output_into_a_reader_that_went_away_is_quiet(argv):
    """``motion-keypoints --help | head -1``: the pipe's reader is gone before the command
    writes; the command ends without a traceback or an 'Exception ignored' line."""
    import subprocess
    import sys

    from conftest import REPO

    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away first
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    # 141 (SIGPIPE's status) when the write itself failed; 0 when only the final flush did
    # (argparse's --help exits 0 first)
    assert rc in (0, 141)
