"""ONNX export of both families (``code/export.py``) and ``predict.py --backend onnxruntime``.

The runs are tiny and untrained, built in this process (a config, random weights, the run
records): export and prediction do not care whether a model learned, only that onnxruntime
reproduces the torch model. The heatmap family (seconds) is in the fast tier, the Keypoint R-CNN
(tracing a detector takes tens of seconds on a busy CPU) in the slow tier.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO, run_main

#: What "the same keypoints" means across backends (pixels, the issue's bound).
MAX_PX = 0.5


def untrained_run(config: str, out, data_root, val_images=(), seed: int = 0):
    """A finished run folder of ``configs/<config>`` with random weights (``model_final.pth``),
    written as a training writes it (holding the run's lock); ``val_images`` go to split.json."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.io.lock import RunLock
    from motion_keypoints.io.runs import SPLIT_FILE, write_run_info
    from motion_keypoints.models.heatmap import meta_arch  # noqa: F401  (registers it)
    from motion_keypoints.models.registry import family_of

    torch.manual_seed(seed)
    cfg = setup_cfg(str(REPO / "configs" / config), ["DATA.ROOT", str(data_root),
                                                      "OUTPUT_DIR", str(out)])
    model = build_model(cfg)
    out.mkdir(parents=True)
    with RunLock(out):
        (out / "config.yaml").write_text(cfg.dump())
        (out / SPLIT_FILE).write_text(json.dumps({"train": [], "val": list(val_images)}))
        DetectionCheckpointer(model, save_dir=str(out)).save("model_final")
        write_run_info(out, data_root=data_root, aug_set="", n_train=0,
                       n_val=len(val_images), max_iter=0, family=family_of(cfg))
    return out


def _train_images(data_root, n):
    import pandas as pd

    return list(pd.read_csv(data_root / "train_df.csv")["image"][:n])


def _coords(path):
    from motion_keypoints.io.predictions import read_predictions

    p = read_predictions(path)
    return p["coords"], p["detected"]


def _max_px(a, b) -> float:
    (ca, da), (cb, db) = _coords(a), _coords(b)
    assert (da == db).all(), "the backends found persons in different images"
    return float(np.abs(ca[da] - cb[db]).max()) if da.any() else 0.0


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _one_error_line(proc) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


# ------------------------------------------------------------------ heatmap family (fast)
@pytest.fixture(scope="module")
def heatmap_run(synthetic_data, tmp_path_factory):
    """An untrained tiny-hrnet run (6 validation images) and its ONNX export."""
    run = untrained_run("tiny-hrnet.yaml", tmp_path_factory.mktemp("export") / "hrnet",
                        synthetic_data, val_images=_train_images(synthetic_data, 6))
    _ok(run_main("export", "--run", run, "--format", "onnx"))
    return run


def test_heatmap_export_describes_itself(heatmap_run):
    import motion_keypoints
    from motion_keypoints.utils import file_sha256

    m = json.loads((heatmap_run / "export" / "export.json").read_text())
    spec = m["files"]["model"]
    assert (m["format"], m["family"], m["kit_version"]) == ("onnx", "heatmap",
                                                            motion_keypoints.__version__)
    assert m["checkpoint"] == "model_final.pth"
    assert m["checkpoint_sha256"] == file_sha256(heatmap_run / "model_final.pth")
    assert spec["sha256"] == file_sha256(heatmap_run / "export" / "heatmap.onnx")
    assert spec["inputs"][0]["shape"] == ["batch", 3, 128, 96]  # tiny-hrnet INPUT_SIZE (96, 128)
    assert spec["outputs"][0]["shape"] == ["batch", len(m["keypoint_names"]), 32, 24]
    assert spec["check"]["max_abs_diff_heatmaps"] < 1e-3


def test_heatmap_onnxruntime_matches_torch(heatmap_run, synthetic_data):
    """Validation split on ground-truth boxes, with flip test (the mirrored crops go through the
    same ONNX file): the same keypoints within 0.5 px, with and without the flip test."""
    outs = {}
    for backend in ("torch", "onnxruntime"):
        _ok(run_main("predict", "--run", heatmap_run, "--data-root", synthetic_data,
                     "--split", "val", "--flip-tta", "--quiet", "--backend", backend,
                     "--tag", backend))
        outs[backend] = heatmap_run / f"predictions_val_{backend}.csv"
    for suffix in ("", "_noflip"):
        a, b = (p.with_name(p.stem + suffix + ".csv") for p in outs.values())
        diff = _max_px(a, b)
        print(f"heatmap family{suffix or ' flip TTA'}: max |onnxruntime - torch| = {diff:.4f} px")
        assert diff <= MAX_PX


def test_predict_onnxruntime_without_export_names_the_command(heatmap_run, synthetic_data,
                                                              tmp_path):
    line = _one_error_line(run_main(
        "predict", "--run", heatmap_run, "--data-root", synthetic_data, "--split", "val",
        "--backend", "onnxruntime", "--export-dir", tmp_path / "none"))
    assert f"python code/export.py --run {heatmap_run} --format onnx --out {tmp_path / 'none'}" \
        in line


def test_stale_export_is_refused(heatmap_run, synthetic_data, tmp_path):
    """The checkpoint changed after the export (trained again): one line, the export command."""
    from motion_keypoints.io.lock import RunLock

    run = tmp_path / "copy"
    shutil.copytree(heatmap_run, run)
    ckpt = torch.load(run / "model_final.pth", weights_only=False)
    ckpt["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    with RunLock(run):
        torch.save(ckpt, run / "model_final.pth")
    line = _one_error_line(run_main("predict", "--run", run, "--data-root", synthetic_data,
                                    "--split", "val", "--backend", "onnxruntime"))
    assert "stale" in line and f"python code/export.py --run {run} --format onnx" in line


def test_overrides_must_match_the_export(heatmap_run, synthetic_data):
    line = _one_error_line(run_main(
        "predict", "--run", heatmap_run, "--data-root", synthetic_data, "--split", "val",
        "--backend", "onnxruntime", "MODEL.HEATMAP.DECODE", "argmax"))
    assert "MODEL.HEATMAP.DECODE" in line and "--format onnx MODEL.HEATMAP.DECODE argmax" in line


def test_exporter_failure_is_one_line_and_writes_nothing(heatmap_run, tmp_path, monkeypatch):
    from motion_keypoints.export import exporters

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nmore detail")

    monkeypatch.setattr(exporters, "export_heatmap", broken)
    out = tmp_path / "export"
    line = _one_error_line(run_main("export", "--run", heatmap_run, "--format", "onnx",
                                    "--out", out))
    assert "cannot be exported to ONNX: RuntimeError: Unsupported: ONNX export of operator foo" \
        in line
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]


def test_export_errors(tmp_path, synthetic_data):
    """No run folder; an R-CNN config the export does not support; no image to trace the R-CNN
    on (its data folder moved): one line each, before any work."""
    line = _one_error_line(run_main("export", "--run", tmp_path / "nope", "--format", "onnx"))
    assert "no such run folder" in line
    run = untrained_run("tiny-cpu.yaml", tmp_path / "rcnn", synthetic_data)
    line = _one_error_line(run_main("export", "--run", run, "--format", "onnx",
                                    "MODEL.MASK_ON", "True"))
    assert "MODEL.MASK_ON True cannot be exported to ONNX" in line
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "data_root": str(tmp_path / "gone")}))
    line = _one_error_line(run_main("export", "--run", run, "--format", "onnx"))
    assert "no example image" in line and "--image FILE" in line
    assert not (run / "export").exists()


# ------------------------------------------------------------------ Keypoint R-CNN (slow)
def _threshold(scores_per_image, example_top: float) -> float:
    """A score threshold between two well-separated detection scores (gap > 1e-3), below the
    example image's best one, near the median: images then keep 0 to all of their persons."""
    s = np.sort(np.concatenate(scores_per_image))
    mids = [(a + b) / 2 for a, b in zip(s[:-1], s[1:]) if b - a > 1e-3 and (a + b) / 2 < example_top]
    return float(min(mids, key=lambda t: abs(t - np.median(s))))


@pytest.mark.slow
def test_keypoint_rcnn_onnxruntime_matches_torch(synthetic_data, tmp_path):
    """Export (TracingAdapter + torch.onnx.export) and predict the synthetic test set with flip
    TTA on both backends: the same keypoints within 0.5 px. The score threshold is set so that
    images keep different numbers of persons (0 included): the number of detections is dynamic
    in the graph. The image size is dynamic too (checked on a crop of another size). Then the
    heatmap family on those boxes, both backends."""
    from motion_keypoints.export.exporters import example_image, load_torch_model
    from motion_keypoints.export.exporters import rcnn_network_outputs as raw
    from motion_keypoints.export.manifest import check_export
    from motion_keypoints.export.runtime import OnnxKeypointRCNN
    from motion_keypoints.models.rcnn.mapper import read_image_as
    from motion_keypoints.models.rcnn.predictor import _model_input, _test_resize, load_run_config

    run = untrained_run("tiny-cpu.yaml", tmp_path / "rcnn", synthetic_data)
    cfg = load_run_config(run)
    model = load_torch_model(cfg)
    resize = _test_resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    files = sorted((synthetic_data / "images" / "test_imgs").glob("*.jpg"))
    with torch.no_grad():
        scores = [raw(model, _model_input(read_image_as(f, "BGR"), resize)["image"])[1].numpy()
                  for f in files]
        top = float(raw(model, example_image(cfg, run)[0]["image"])[1].max())
    opts = ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", f"{_threshold(scores, top):.6f}"]
    _ok(run_main("export", "--run", run, "--format", "onnx", *opts))

    outs = {}
    for backend in ("torch", "onnxruntime"):
        _ok(run_main("predict", "--run", run, "--data-root", synthetic_data, "--flip-tta",
                     "--quiet", "--backend", backend, "--tag", backend, *opts))
        outs[backend] = run / f"predictions_test_{backend}.csv"
    _, detected = _coords(outs["torch"])
    assert detected.any() and not detected.all(), "the threshold should leave some images empty"
    for suffix in ("", "_noflip"):
        a, b = (p.with_name(p.stem + suffix + ".csv") for p in outs.values())
        diff = _max_px(a, b)
        print(f"Keypoint R-CNN{suffix or ' flip TTA'}: max |onnxruntime - torch| = {diff:.4f} px")
        assert diff <= MAX_PX

    # another image size than the traced one: the same persons
    model = load_torch_model(load_run_config(run, "best", opts))
    onnx = OnnxKeypointRCNN(run / "export" / "keypoint_rcnn.onnx")
    image = read_image_as(files[0], "BGR")[10:170, 20:260]
    item = _model_input(image, resize)
    assert tuple(item["image"].shape[1:]) != tuple(example_image(cfg, run)[0]["image"].shape[1:])
    with torch.no_grad():
        ref = model([item])[0]["instances"]
    got = onnx([item])[0]["instances"]
    assert len(ref) == len(got) > 0
    assert np.abs(ref.pred_keypoints.numpy() - got.pred_keypoints.numpy()).max() <= MAX_PX

    # heatmap family on these boxes (the test split needs them), both backends
    shutil.copy(outs["torch"], run / "predictions_test.csv")
    hm = untrained_run("tiny-hrnet.yaml", tmp_path / "hrnet", synthetic_data)
    _ok(run_main("export", "--run", hm, "--format", "onnx"))
    check_export(hm)
    for backend in ("torch", "onnxruntime"):
        _ok(run_main("predict", "--run", hm, "--data-root", synthetic_data, "--flip-tta",
                     "--quiet", "--backend", backend, "--tag", backend, "--boxes-from", run))
    diff = _max_px(hm / "predictions_test_torch.csv", hm / "predictions_test_onnxruntime.csv")
    print(f"heatmap family on R-CNN boxes, flip TTA: max |onnxruntime - torch| = {diff:.4f} px")
    assert diff <= MAX_PX


@pytest.mark.slow
def test_export_benchmark_runs():
    """benchmarks/export.py --quick end to end (its ratio is printed, never asserted)."""
    import re
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "export.py"), "--quick"],
                          capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for family in ("rcnn", "heatmap"):
        line = next(x for x in proc.stdout.splitlines() if x.startswith(family + " "))
        assert "ratio onnxruntime/torch" in line, line
        gap = re.search(r"max keypoint difference ([0-9.]+) px", line)
        assert gap and float(gap.group(1)) <= MAX_PX, line
