"""Video in (issue 13): decoding and writing, the predict_video pipeline on a synthetic MP4 with a
tiny untrained Keypoint R-CNN, a frames folder, and one-line errors for bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import log_records

from motion_keypoints.geometry import box_from_points
from motion_keypoints.io.video import VideoError, count_frames, open_frames, write_video
from motion_keypoints.meta import COORD_COLUMNS, FLIP_PAIRS, KEYPOINT_NAMES
from motion_keypoints.motion.video import (
    VIDEO_COLUMNS,
    fuse_members,
    keypoints_table,
    smooth_video_keypoints,
)

REPO = Path(__file__).resolve().parents[1]
W, H, N = 96, 64, 7


def _frames(n=N, w=W, h=H):
    out = []
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        cv2.circle(img, (10 + 8 * i, h // 2), 6, (0, 200, 255), -1)
        out.append(img)
    return out


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    assert write_video(path, _frames(), 25.0) == N
    return path


def test_write_then_read_keeps_frame_count_size_and_fps(small_video):
    src = open_frames(small_video)
    assert (src.kind, src.width, src.height, src.fps) == ("video", W, H, 25.0)
    frames = list(src)
    assert len(frames) == N == count_frames(small_video)
    assert frames[0].shape == (H, W, 3) and frames[0].dtype == np.uint8
    # lossy, but the moving disc is where it was drawn
    assert frames[3][H // 2, 10 + 8 * 3].astype(int)[2] > 150


def test_frames_folder_in_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, img in enumerate(_frames(11)):
        cv2.imwrite(str(folder / f"f{i}.png"), img)  # f10 after f9, not after f1
    (folder / "notes.txt").write_text("not a frame")
    src = open_frames(folder, fps=12)
    assert (src.kind, src.count, src.fps) == ("frames", 11, 12.0)
    assert [p.name for p in src.files][-2:] == ["f9.png", "f10.png"]
    assert len(list(src)) == 11


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "empty_folder", "zero_fps"])
def test_bad_sources_raise_one_line_errors(tmp_path, kind):
    path = tmp_path / "x.mp4"
    fps = None
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "empty_folder":
        path = tmp_path / "folder"
        path.mkdir()
    elif kind == "zero_fps":
        path.write_text("x")
        fps = 0
    with pytest.raises(VideoError) as exc:
        open_frames(path, fps)
    msg = str(exc.value)
    assert "\n" not in msg and (str(path) in msg or "--fps" in msg)


def test_unknown_codec_and_zero_frames_are_named(tmp_path, monkeypatch):
    class FakeCapture:
        def __init__(self, path, count):
            self.count = count

        def isOpened(self):
            return True

        def get(self, prop):
            return {cv2.CAP_PROP_FRAME_COUNT: self.count, cv2.CAP_PROP_FPS: 30.0,
                    cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*"ZZZZ"))}.get(prop, 0.0)

        def read(self):
            return False, None

        def release(self):
            pass

    path = tmp_path / "odd.mkv"
    path.write_bytes(b"\0" * 64)
    monkeypatch.setattr(cv2, "VideoCapture", lambda p: FakeCapture(p, 10))
    with pytest.raises(VideoError, match="codec 'ZZZZ' is unknown"):
        open_frames(path)
    monkeypatch.setattr(cv2, "VideoCapture", lambda p: FakeCapture(p, 0))
    with pytest.raises(VideoError, match="zero frames"):
        open_frames(path)


def _inst(kps, score):
    return {"keypoints": kps, "keypoint_scores": np.ones(len(kps)), "box": box_from_points(kps, 0.1),
            "score": score}


def test_fuse_aligns_members_on_the_reference_person():
    rng = np.random.default_rng(0)
    main = rng.uniform(100, 200, (len(KEYPOINT_NAMES), 2))
    other = main + 400
    ref = [[_inst(main, 0.9), _inst(other, 0.95)], []]
    # the second member lists the bystander first; it must be matched by box, not by order
    member = [[_inst(other + 2, 0.99), _inst(main + 2, 0.5)], [_inst(main, 0.9)]]
    fused = fuse_members(ref, [0, None], [member])
    assert np.allclose(fused["keypoints"][0], main + 1)  # mean of main and main + 2
    assert fused["members"].tolist() == [2, 0] and fused["detected"].tolist() == [1, 0]
    assert np.isnan(fused["keypoints"][1]).all()
    table = keypoints_table(fused, fps=10.0)
    assert tuple(table.columns) == VIDEO_COLUMNS and table["time"].tolist() == [0.0, 0.1]


def test_video_smoothing_reduces_jitter_and_keeps_missing_frames():
    t = np.arange(40)
    body = np.random.default_rng(0).uniform(0, 150, (len(KEYPOINT_NAMES), 2))  # a person's extent
    truth = body[None] + np.stack([100 + 2 * t, 50 + 0.5 * t], 1)[:, None, :]
    noisy = truth + np.random.default_rng(1).normal(0, 3, truth.shape)
    detected = np.ones(40, int)
    detected[20] = 0
    noisy[20] = np.nan
    out = smooth_video_keypoints(noisy, detected)
    ok = detected == 1
    assert np.isnan(out[20]).all()
    assert np.sqrt(np.mean((out[ok] - truth[ok]) ** 2)) < 0.7 * np.sqrt(
        np.mean((noisy[ok] - truth[ok]) ** 2))
    assert np.array_equal(smooth_video_keypoints(noisy, detected, "off"), noisy, equal_nan=True)


def _run_cli(*args):
    return subprocess.run([sys.executable, str(REPO / "code" / "predict_video.py"), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def _run_in_process(*args):
    """predict_video's command in this process (conftest.run_main, no interpreter start); the
    bad-input tests keep _run_cli: a whole process's stderr is one line."""
    from conftest import run_main

    return run_main("predict_video", *args)


@pytest.mark.slow
def test_cli_bad_inputs_exit_1_with_one_line(tmp_path, small_video):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    run = tmp_path / "norun"
    cases = [
        ([bad, "--runs", run, "--out", tmp_path / "o1"], str(bad)),
        ([tmp_path / "nothing.mp4", "--runs", run, "--out", tmp_path / "o2"], "no such video"),
        ([small_video, "--runs", run, "--out", tmp_path / "o3"], str(run)),
        ([small_video, "--runs", run, "--out", small_video], "is a file"),
    ]
    for args, expected in cases:
        proc = _run_cli(*args)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
        assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- a real (untrained) tiny model


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory):
    """A tiny-cpu Keypoint R-CNN run folder with random weights: enough for the pipeline."""
    pytest.importorskip("detectron2")
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from motion_keypoints.engine.config import setup_cfg

    run = tmp_path_factory.mktemp("runs") / "tiny-untrained"
    run.mkdir()
    cfg = setup_cfg(str(REPO / "configs" / "tiny-cpu.yaml"),
                    ["OUTPUT_DIR", str(run), "MODEL.DEVICE", "cpu"], freeze=False)
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(cfg), save_dir=str(run)).save("model_final")
    (run / "config.yaml").write_text(cfg.dump())
    (run / "run_info.json").write_text(json.dumps({
        "family": "rcnn", "keypoint_names": list(KEYPOINT_NAMES),
        "flip_pairs": [list(p) for p in FLIP_PAIRS]}))
    return run


@pytest.fixture(scope="module")
def synthetic_clip(tmp_path_factory):
    from motion_keypoints.data.synthetic.writer import make_synthetic

    root = tmp_path_factory.mktemp("dense")
    video = root / "clip.mp4"
    make_synthetic(root / "data", 1, 6, width=160, height=96, progress=False, cameras_per_clip=1,
                   frames_per_camera=6, frame_step=1, distractor=1.0, video=video)
    return video


@pytest.mark.slow
def test_predict_video_writes_csv_and_overlay(tmp_path, untrained_run, synthetic_clip):
    out = tmp_path / "out"
    proc = _run_in_process(synthetic_clip, "--runs", untrained_run, untrained_run, "--out", out,
                           "--checkpoint", "final", "--batch-size", "4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    n = count_frames(synthetic_clip)
    assert "6 frames" in proc.stdout and "frames/s" in proc.stdout and "without a person" in proc.stdout
    table = pd.read_csv(out / "keypoints.csv")
    assert tuple(table.columns) == VIDEO_COLUMNS and len(table) == n
    assert table["frame"].tolist() == list(range(n))
    assert np.allclose(table["time"], np.arange(n) / 30.0, atol=1e-3)
    det = table["detected"] == 1
    assert np.isfinite(table.loc[det, list(COORD_COLUMNS)].to_numpy()).all()
    assert count_frames(out / "overlay.mp4") == n
    assert open_frames(out / "overlay.mp4").width == 160


@pytest.mark.slow
def test_predict_video_from_a_frames_folder(tmp_path, untrained_run, synthetic_clip):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, img in enumerate(open_frames(synthetic_clip)):
        cv2.imwrite(str(folder / f"frame_{i}.png"), img)
    out = tmp_path / "out"
    proc = _run_in_process(folder, "--runs", untrained_run, "--out", out, "--checkpoint", "final",
                           "--no-flip-tta", "--smooth", "off", "--rule", "score", "--fps", "10", "--quiet")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "keypoints.csv")
    assert len(table) == 6 and np.allclose(table["time"], np.arange(6) / 10.0)
    assert count_frames(out / "overlay.mp4") == 6


# ------------------------------------------------------- heatmap members (boxes from an R-CNN run)


def _fake_rcnn(frames_instances):
    """An R-CNN member that gives the listed instances of each frame, in order."""
    from motion_keypoints.motion.video import Member

    calls = {"t": 0}

    def predict(frames):
        t = calls["t"]
        calls["t"] += len(frames)
        return [frames_instances[i] for i in range(t, t + len(frames))]

    return Member(Path("rcnn"), "rcnn", predict, False, "rcnn")


def test_heatmap_member_gets_the_followed_persons_boxes_and_is_fused(tmp_path, small_video):
    from motion_keypoints.motion.video import Member, predict_video

    rng = np.random.default_rng(0)
    main = rng.uniform(20, 40, (len(KEYPOINT_NAMES), 2))
    main[:, 0] += 20
    other = main + np.array([30.0, 0.0])  # a bystander with a higher score in every frame
    frames = [[_inst(main + t, 0.6), _inst(other + t, 0.9)] for t in range(N)]
    frames[3] = []  # nobody detected: the heatmap member gets None
    received = []

    def heatmap(frames_, boxes, scores):
        received.extend(boxes)
        return [[] if b is None else [{"keypoints": main + t + 4, "box": b, "score": 0.0,
                                       "keypoint_scores": np.full(len(main), 0.5)}]
                for t, b in zip(range(len(received) - len(boxes), len(received)), boxes)]

    members = [_fake_rcnn(frames), Member(Path("hm"), "heatmap", heatmap, True, "hm")]
    summary = predict_video(small_video, [], tmp_path / "o", members=members, rule="area",
                            smooth="off", batch_size=3, progress=False)
    assert summary["frames"] == N and summary["without_person"] == 1
    assert len(received) == N and received[3] is None
    # rule "area": the main person (same size, listed first) is followed, not the better-scored one
    for t in (0, 1, 2, 4, 5, 6):
        assert np.allclose(received[t], frames[t][0]["box"])
    table = pd.read_csv(tmp_path / "o" / "keypoints.csv")
    xy = table[list(COORD_COLUMNS)].to_numpy().reshape(N, -1, 2)
    assert np.allclose(xy[0], main + 2, atol=1e-3)  # mean of R-CNN (main) and heatmap (main + 4)
    assert np.isnan(xy[3]).all() and table["detected"].tolist()[3] == 0


@pytest.fixture(scope="module")
def heatmap_model():
    """An untrained configs/tiny-hrnet.yaml model (cfg, model)."""
    pytest.importorskip("detectron2")
    import torch
    from detectron2.modeling import build_model

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.models.heatmap import meta_arch  # noqa: F401  (registers the arch)

    cfg = setup_cfg(str(REPO / "configs" / "tiny-hrnet.yaml"), ["MODEL.DEVICE", "cpu"],
                    freeze=False)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.eval()
    return cfg, model


@pytest.mark.slow
def test_predict_boxes_matches_the_models_own_inference(heatmap_model):
    import torch

    from motion_keypoints.geometry import from_continuous
    from motion_keypoints.models.heatmap.predictor import predict_boxes

    cfg, model = heatmap_model
    frames = _frames(3, 160, 120)
    boxes = [np.array([20.0, 10.0, 90.0, 110.0]), None, np.array([50.0, 30.0, 120.0, 100.0])]
    for flip in (False, True):
        out = predict_boxes(cfg, model, frames, boxes, flip_tta=flip, box_scores=[0.7, 0.0, 0.8])
        assert out[1] is None and out[0]["score"] == 0.7
        assert out[0]["keypoints"].shape == (len(KEYPOINT_NAMES), 2)
        assert out[2]["keypoint_scores"].shape == (len(KEYPOINT_NAMES),)
        assert np.array_equal(out[2]["box"], boxes[2])
        # the meta-architecture on whole images + boxes (continuous) gives the same persons
        model.flip_test = flip
        for i in (0, 2):
            img = frames[i] if cfg.INPUT.FORMAT == "BGR" else frames[i][:, :, ::-1]
            res = model([{"image": torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1))),
                          "boxes": boxes[i][None], "height": 120, "width": 160}])
            kp = res[0]["instances"].pred_keypoints[0].numpy().astype(np.float64)
            assert np.allclose(from_continuous(kp[:, :2]), out[i]["keypoints"], atol=1e-3)
            assert np.allclose(kp[:, 2], out[i]["keypoint_scores"], atol=1e-5)
    assert predict_boxes(cfg, model, frames[:1], [None], flip_tta=True) == [None]


@pytest.fixture(scope="module")
def heatmap_run(tmp_path_factory, heatmap_model):
    """A tiny-hrnet heatmap run folder with random weights."""
    from detectron2.checkpoint import DetectionCheckpointer

    cfg, model = heatmap_model
    run = tmp_path_factory.mktemp("runs") / "hrnet-untrained"
    run.mkdir()
    cfg = cfg.clone()
    cfg.OUTPUT_DIR = str(run)
    DetectionCheckpointer(model, save_dir=str(run)).save("model_final")
    (run / "config.yaml").write_text(cfg.dump())
    (run / "run_info.json").write_text(json.dumps({
        "family": "heatmap", "keypoint_names": list(KEYPOINT_NAMES),
        "flip_pairs": [list(p) for p in FLIP_PAIRS]}))
    return run


@pytest.fixture(scope="module")
def rcnn_run_with_boxes(tmp_path_factory, untrained_run):
    """The untrained R-CNN run with no score threshold, so it gives boxes for the heatmap run."""
    import shutil

    run = tmp_path_factory.mktemp("runs") / "tiny-untrained-all"
    shutil.copytree(untrained_run, run)
    cfg = (run / "config.yaml").read_text()
    assert "SCORE_THRESH_TEST:" in cfg
    import re

    (run / "config.yaml").write_text(re.sub(r"SCORE_THRESH_TEST: [0-9.e-]+",
                                            "SCORE_THRESH_TEST: 0.0", cfg))
    return run


@pytest.mark.slow
def test_predict_video_with_rcnn_and_heatmap_runs(tmp_path, rcnn_run_with_boxes, heatmap_run,
                                                   synthetic_clip):
    out = tmp_path / "out"
    proc = _run_in_process(synthetic_clip, "--runs", rcnn_run_with_boxes, heatmap_run, "--out", out,
                           "--checkpoint", "final", "--batch-size", "4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    n = count_frames(synthetic_clip)
    line = proc.stdout.strip().splitlines()[-1]
    assert f"{n} frames" in line and "2 run(s)" in line and "frames/s" in line, line
    assert "without a person" in line and "Traceback" not in proc.stderr
    table = pd.read_csv(out / "keypoints.csv")
    assert tuple(table.columns) == VIDEO_COLUMNS and len(table) == n
    assert table["detected"].sum() > 0  # boxes were given, so the heatmap run predicted
    det = table["detected"] == 1
    assert np.isfinite(table.loc[det, list(COORD_COLUMNS)].to_numpy()).all()
    assert count_frames(out / "overlay.mp4") == n


@pytest.mark.slow
def test_heatmap_runs_only_is_one_line_error(tmp_path, small_video, heatmap_run):
    proc = _run_cli(small_video, "--runs", heatmap_run, heatmap_run, "--out", tmp_path / "o")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert "needs an R-CNN run" in lines[0] and "--runs" in lines[0]
    assert not (tmp_path / "o" / "keypoints.csv").exists()


# ------------------------------------------------------------------ issue 20: bad frames early
def _frames_folder(tmp_path, n=5):
    folder = tmp_path / "frames"
    folder.mkdir(parents=True)
    for i, img in enumerate(_frames(n)):
        cv2.imwrite(str(folder / f"f{i:02d}.jpg"), img)
    return folder


def test_a_truncated_frame_is_refused_with_check_datas_verdict(tmp_path):
    from motion_keypoints.io.images import check_image_file

    folder = _frames_folder(tmp_path)
    bad = folder / "f03.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated
    verdict = check_image_file(bad)[1]
    assert verdict is not None  # check_data's decode level refuses it too
    with pytest.raises(VideoError) as exc:
        open_frames(folder)
    msg = str(exc.value)
    assert "\n" not in msg and "f03.jpg" in msg and "1 of 5 frames" in msg and verdict in msg
    # the grey frame OpenCV would have decoded is never produced
    good = _frames_folder(tmp_path / "b")
    assert open_frames(good).count == 5


def test_mixed_frame_sizes_are_refused_at_open(tmp_path):
    folder = _frames_folder(tmp_path)
    cv2.imwrite(str(folder / "f04.jpg"), _frames(1, w=W + 8)[0])
    with pytest.raises(VideoError, match=r"f04.jpg: 104x64 differs from the first frame's 96x64"):
        open_frames(folder)


def test_cli_refuses_bad_frames_before_loading_any_model(tmp_path, capsys):
    """The frames are checked before the runs are even looked at (a missing run would be the
    error otherwise), so no model load precedes the error."""
    from motion_keypoints.cli.predict_video import main

    folder = _frames_folder(tmp_path)
    bad = folder / "f01.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    rc = main([str(folder), "--runs", str(tmp_path / "no-run"), "--out", str(tmp_path / "out"),
               "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: ") and "f01.jpg" in err[0], err
    assert not (tmp_path / "out" / "keypoints.csv").exists()


# --------------------------------------------------- issue 20: an overlay any browser plays
def _chromium():
    import shutil

    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)


PAGE = """<!doctype html><html><body><pre id="out">pending</pre>
<video id="v" src="{src}" muted playsinline autoplay></video>
<script>
const v = document.getElementById("v"), out = document.getElementById("out");
const report = (what) => {{ out.textContent = JSON.stringify({{what, duration: v.duration,
  readyState: v.readyState, currentTime: v.currentTime, width: v.videoWidth,
  error: v.error ? v.error.code : null}}); }};
v.addEventListener("error", () => report("error"));
v.addEventListener("loadedmetadata", () => report("metadata"));
v.addEventListener("timeupdate", () => {{ if (v.currentTime > 0) report("playing"); }});
v.addEventListener("ended", () => report("ended"));
v.play().catch((e) => {{ out.textContent = "play refused: " + e; }});
</script></body></html>"""


def test_the_overlay_plays_in_a_headless_browser(tmp_path):
    """The MP4 that predict_video writes (io.video.write_video: H.264) opens, plays and has the
    right duration in Debian's Chromium, headless (`make test` installs it where apt-get works)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium; `make test` does it "
                    "where apt-get works): the overlay's playback is not checked here")
    n, fps = 45, 30.0
    video = tmp_path / "overlay.mp4"
    assert write_video(video, _frames(n, w=97, h=65), fps) == n  # odd sides too
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(src=video.name))
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required", "--allow-file-access-from-files",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)  # fmt: skip
    import re

    found = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = found.group(1).replace("&quot;", '"')
    assert text.startswith("{"), f"the browser does not play the overlay: {text}"  # mp4v: refused
    state = json.loads(text)
    print(f"chromium: {state}")
    assert state["error"] is None and state["what"] in ("playing", "ended"), state
    assert state["currentTime"] > 0 and state["readyState"] >= 2 and state["width"] == 98
    assert state["duration"] == pytest.approx(n / fps, abs=0.05)


# -------------------------------- issue 18: one fusion, members from the family registry, logging
def test_fuse_members_uses_the_images_fusion_per_keypoint_and_its_methods():
    rng = np.random.default_rng(1)
    main = rng.uniform(100, 200, (len(KEYPOINT_NAMES), 2))
    holed = _inst(main + 3, 0.9)
    holed["keypoints"] = holed["keypoints"].copy()
    holed["keypoints"][0] = np.nan  # this member lost one keypoint: left out there only
    ref = [[_inst(main, 0.9)]]
    others = [[[holed]], [[_inst(main + 30, 0.8)]]]
    fused = fuse_members(ref, [0], others)
    assert fused["members"].tolist() == [3]
    assert np.allclose(fused["keypoints"][0, 0], main[0] + 15)  # mean of main and main + 30
    assert np.allclose(fused["keypoints"][0, 1:], main[1:] + 11)  # mean of all three
    median = fuse_members(ref, [0], others, method="median")
    assert np.allclose(median["keypoints"][0, 1:], main[1:] + 3)


def _run_folder(path, family):
    path.mkdir(parents=True)
    (path / "run_info.json").write_text(json.dumps({
        "family": family, "keypoint_names": list(KEYPOINT_NAMES),
        "flip_pairs": [list(p) for p in FLIP_PAIRS]}))
    return path


def test_runs_that_all_need_boxes_are_refused_before_any_model_is_loaded(tmp_path, small_video):
    from motion_keypoints.io.runs import RunError
    from motion_keypoints.motion.video import predict_video

    run = _run_folder(tmp_path / "hm", "heatmap")  # no weights: loading it would fail otherwise
    with pytest.raises(RunError, match="needs an R-CNN run"):
        predict_video(small_video, [run, run], tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_a_registered_family_is_a_video_member_and_the_summary_is_logged(tmp_path, small_video):
    """The video asks the family registry for a run's member class: a test-only family works
    without motion/video.py naming it, and the summary line is logged, not printed."""
    from motion_keypoints.io.runs import RunError
    from motion_keypoints.models import registry
    from motion_keypoints.motion.video import describe_video_summary, predict_video

    main = np.random.default_rng(2).uniform(20, 40, (len(KEYPOINT_NAMES), 2))

    class ToyMember:
        needs_boxes = False

        def __init__(self, run, checkpoint="best", flip_tta=True):
            self.run = run

        def __call__(self, frames):
            return [[_inst(main, 0.9)] for _ in frames]

    run = _run_folder(tmp_path / "toy-run", "toy-video")
    registry.register(registry.Family("toy-video", ("ToyVideoArch",), video_member=ToyMember))
    try:
        with log_records("motion_keypoints") as records:
            summary = predict_video(small_video, [run], tmp_path / "o", smooth="off", progress=False)
    finally:
        registry.unregister("toy-video")
    assert summary["members"] == ["toy-run"] and summary["without_person"] == 0
    xy = pd.read_csv(tmp_path / "o" / "keypoints.csv")[list(COORD_COLUMNS)].to_numpy()
    assert np.allclose(xy.reshape(N, -1, 2), main[None], atol=1e-3)
    line = describe_video_summary(summary)
    assert [r.getMessage() for r in records if "frames/s" in r.getMessage()] == [line]
    assert line.startswith(f"{N} frames ({W}x{H}, 25 fps) with 1 run(s), flip TTA: ")
    assert "0 frames without a person" in line and "0 identity switches" in line
    with pytest.raises(RunError, match="unknown family 'toy-video'"):
        predict_video(small_video, [run], tmp_path / "o2", progress=False)
