"""Fast feedback (issue 17): the demo as a declarative list of stages, its plain-line output off a
terminal, and the image check a training start pays for."""

import io
from pathlib import Path

import pytest
from conftest import REPO

from motion_keypoints.cli.demo import (
    PROFILES,
    DemoPlan,
    Family,
    PlainLines,
    Stage,
    demo_stages,
    run_stage,
)

RCNN = Family("", str(REPO / "configs" / "tiny-cpu.yaml"), 7)
HRNET = Family("hrnet_", str(REPO / "configs" / "tiny-hrnet.yaml"), 5, on_rcnn_boxes=True)


def _arg(stage: Stage, option: str) -> str:
    return stage.args[stage.args.index(option) + 1]


def test_demo_trains_both_families_on_every_set_and_shows_the_whole_kit(tmp_path):
    plan = DemoPlan(out=tmp_path / "demo", submission=tmp_path / "sub.csv", families=[RCNN, HRNET],
                    sets=("demo", "demo_crop"))
    stages = demo_stages(plan)
    commands = [s.command for s in stages]
    assert commands[:4] == ["make_synthetic", "check_data", "augmentation", "augmentation"]
    assert commands[-3:] == ["ensemble", "ensemble", "check_submission"]
    trains = [s for s in stages if s.command == "train"]
    assert [Path(_arg(s, "OUTPUT_DIR")).name for s in trains] == [
        "demo", "hrnet_demo", "demo_crop", "hrnet_demo_crop"]
    assert all(s.own_process for s in trains) and not any(
        s.own_process for s in stages if s.command != "train")
    # each model trains on its set, for its family's iterations
    for s, (set_name, iters) in zip(trains, [("demo", 7), ("demo", 5), ("demo_crop", 7),
                                             ("demo_crop", 5)]):
        assert _arg(s, "DATA.AUG_SET") == set_name and _arg(s, "SOLVER.MAX_ITER") == str(iters)
    # every model predicts val and test with flip TTA; a heatmap model on its set's R-CNN boxes
    predicts = [s for s in stages if s.command == "predict"]
    assert len(predicts) == 8 and all("--flip-tta" in s.args for s in predicts)
    for s in predicts:
        run = Path(_arg(s, "--run"))
        if run.name.startswith("hrnet_"):
            assert _arg(s, "--boxes-from") == str(run.parent / run.name[len("hrnet_"):])
        else:
            assert "--boxes-from" not in s.args
    assert plan.runs == [Path(_arg(s, "OUTPUT_DIR")) for s in trains]
    ens = [s for s in stages if s.command == "ensemble"]
    assert [_arg(s, "--split") for s in ens] == ["val", "test"]
    assert _arg(ens[1], "--out") == str(plan.submission)
    assert stages[4].shell.startswith("python code/train.py --config-file ")


def test_each_training_pairs_with_the_same_family_on_the_next_set(tmp_path):
    from motion_keypoints.cli.demo import next_sibling

    plan = DemoPlan(out=tmp_path / "demo", submission=tmp_path / "sub.csv", families=[RCNN, HRNET],
                    sets=("demo", "demo_crop", "demo_third"))
    stages = demo_stages(plan)
    at = {s.name: i for i, s in enumerate(stages)}
    pairs = {s.name: stages[j].name for i, s in enumerate(stages)
             if (j := next_sibling(stages, i)) is not None}
    assert pairs == {"train demo": "train demo_crop", "train demo_crop": "train demo_third",
                     "train hrnet_demo": "train hrnet_demo_crop",
                     "train hrnet_demo_crop": "train hrnet_demo_third"}
    # a training needs only the data and the augmentation sets, which come before any training
    first_train = min(at[n] for n in pairs)
    assert all(s.command in ("make_synthetic", "check_data", "augmentation")
               for s in stages[:first_train])
    assert next_sibling(stages, at["ensemble val"]) is None


def test_a_stage_started_beside_another_prints_its_lines_at_its_turn(synthetic_data, tmp_path,
                                                                     capsys):
    from motion_keypoints.cli.demo import Beside

    stage = Stage("data check", "check_data", ("--data-root", str(synthetic_data)), own_process=True)
    started = Beside(stage, 1, "train demo")
    with open(tmp_path / "demo.log", "w") as log:
        seconds = run_stage(stage, log, terminal=False, started=started)
    out = capsys.readouterr().out
    assert seconds == started.seconds > 0 and started.rc == 0
    assert "(trained beside train demo, 1 thread(s) each)" in out
    assert "train: 24 rows" in out and "train: 24 rows" in (tmp_path / "demo.log").read_text()
    failing = Beside(Stage("data check", "check_data", ("--data-root", str(tmp_path / "none")),
                           own_process=True), 1, "train demo")
    from motion_keypoints.cli.demo import StageError

    with open(tmp_path / "demo2.log", "w") as log, pytest.raises(StageError, match="data check"):
        run_stage(failing.stage, log, terminal=False, started=failing)


def test_demo_without_a_heatmap_family_and_the_profiles(tmp_path):
    plan = DemoPlan(out=tmp_path, submission=tmp_path / "s.csv", families=[RCNN], sets=("demo",))
    assert [s.name for s in demo_stages(plan) if s.command == "train"] == ["train demo"]
    assert PROFILES["long"].rcnn_iters > PROFILES["short"].rcnn_iters
    assert PROFILES["long"].heatmap_iters > PROFILES["short"].heatmap_iters


def test_plain_lines_drop_progress_bar_redraws():
    from tqdm import tqdm

    sink = io.StringIO()
    plain = PlainLines(sink)
    plain.write("line one\nbar  10%\rbar  50%\r")
    plain.write("bar 100%\n")
    for _ in tqdm(range(30), file=plain, desc="stage", mininterval=0):
        pass
    plain.write("last\n")
    text = sink.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[:2] == ["line one", "bar 100%"] and lines[-1] == "last"
    bars = [x for x in lines if x.startswith("stage")]
    assert len(bars) == 1 and "30/30" in bars[0]  # the bar's final state only


def test_an_in_process_stage_off_a_terminal_prints_plain_lines(synthetic_data, tmp_path, capsys):
    log_path = tmp_path / "demo.log"
    with open(log_path, "w") as log:
        seconds = run_stage(Stage("data check", "check_data", ("--data-root", str(synthetic_data))),
                            log, terminal=False)
    out = capsys.readouterr().out
    assert seconds > 0 and "\r" not in out
    assert out.startswith("\n==> data check: python code/check_data.py --data-root ")
    assert "train: 24 rows" in out and "train: 24 rows" in log_path.read_text()


def test_a_failing_stage_stops_the_demo_with_one_line(tmp_path):
    from motion_keypoints.cli.demo import StageError

    with open(tmp_path / "demo.log", "w") as log, pytest.raises(StageError, match="data check"):
        run_stage(Stage("data check", "check_data", ("--data-root", str(tmp_path / "none"))),
                  log, terminal=False)


# ------------------------------------------------------------------ start-up: image check level


def test_training_reads_image_headers_by_default_and_decodes_on_request(tmp_path):
    from motion_keypoints.engine.config import setup_cfg

    tiny = REPO / "configs" / "tiny-cpu.yaml"
    assert setup_cfg(str(tiny)).DATA.CHECK_IMAGES == "header"
    assert setup_cfg(str(tiny), ["DATA.CHECK_IMAGES", "decode"]).DATA.CHECK_IMAGES == "decode"
    # configs and run folders written when the key was a bool keep their meaning
    assert setup_cfg(str(tiny), ["DATA.CHECK_IMAGES", "True"]).DATA.CHECK_IMAGES == "decode"
    assert setup_cfg(str(tiny), ["DATA.CHECK_IMAGES", "False"]).DATA.CHECK_IMAGES == "exists"
    old = tmp_path / "old.yaml"
    old.write_text(f'_BASE_: "{tiny}"\nDATA:\n  CHECK_IMAGES: true\n')
    assert setup_cfg(str(old)).DATA.CHECK_IMAGES == "decode"
