import base64
import json
import logging
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import pytest
from detectron2.config import CfgNode
from detectron2.utils.events import EventStorage

from motion_keypoints.engine import tracking
from motion_keypoints.engine.tracking import NeptuneHook, neptune_enabled

SECRET = "S3cr3t-api-key-do-not-print"
NEPTUNE_ENV = (
    "NEPTUNE_API_TOKEN",
    "NEPTUNE_PROJECT",
    "NEPTUNE_MODE",
    "NEPTUNE_DATA_DIRECTORY",
    "MOTION_KEYPOINTS_NEPTUNE",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def fake_token() -> str:
    """A well-formed Neptune token (base64 JSON) whose server address is real but unreachable
    from a closed network."""
    info = {"api_address": "https://app.neptune.ai", "api_url": "https://app.neptune.ai"}
    info["api_key"] = SECRET
    return base64.b64encode(json.dumps(info).encode()).decode()


@pytest.fixture
def clean_env(monkeypatch):
    for name in NEPTUNE_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def our_warnings(caplog):
    return [
        r for r in caplog.records if r.name == tracking.__name__ and r.levelno >= logging.WARNING
    ]


def train(hook, iterations=45, val_every=25, best=None):
    """Drive the hook like detectron2's trainer loop, with losses, lr and a validation metric."""
    storage = EventStorage(0)
    trainer = SimpleNamespace(iter=0, storage=storage)
    if best is not None:  # the trainer's best-checkpoint hook (engine.hooks.BestCheckpointer)
        record = best if isinstance(best, dict) else {"path": str(best)}
        trainer._hooks = [SimpleNamespace(), SimpleNamespace(best_record=record)]
    hook.trainer = trainer
    with storage:
        hook.before_train()
        for it in range(iterations):
            trainer.iter = storage.iter = it
            storage.put_scalars(total_loss=10.0 / (it + 1), loss_keypoint=5.0 / (it + 1))
            storage.put_scalar("lr", 0.01, smoothing_hint=False)
            if (it + 1) % val_every == 0:
                storage.put_scalar("val/rmse", 100.0 - it, smoothing_hint=False)
            hook.after_step()
        trainer.iter = iterations
        hook.after_train()


def offline_ops(data_dir):
    """The operations a Neptune offline run wrote, as dicts."""
    logs = sorted(data_dir.glob("offline/run__*/data-*.log"))
    assert logs, f"no offline Neptune data under {data_dir}"
    return [json.loads(line)["obj"] for log in logs for line in log.read_text().splitlines()]


def series(ops, path):
    return [
        (v["step"], v["value"])
        for op in ops
        if op["path"] == path.split("/") and op["type"] == "LogFloats"
        for v in op["values"]
    ]


def assigned(ops, path):
    return [op["value"] for op in ops if op["path"] == path.split("/") and "value" in op]


def test_neptune_enabled_by_flag_or_env():
    assert neptune_enabled(True, {})
    assert not neptune_enabled(False, {})
    assert neptune_enabled(False, {"MOTION_KEYPOINTS_NEPTUNE": "1"})
    assert neptune_enabled(False, {"MOTION_KEYPOINTS_NEPTUNE": "true"})
    assert not neptune_enabled(False, {"MOTION_KEYPOINTS_NEPTUNE": "0"})
    assert not neptune_enabled(False, {"MOTION_KEYPOINTS_NEPTUNE": ""})


def test_disabled_tracking_never_imports_neptune(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        from motion_keypoints.engine.tracking import build_tracking_hook, make_neptune_hook
        assert make_neptune_hook(False, {{"a": 1}}, "run", {str(tmp_path)!r}, env={{}}) is None
        class Cfg:
            OUTPUT_DIR = {str(tmp_path)!r}
            class TRACKING:
                NEPTUNE, PERIOD, TAGS = False, 20, []
        assert build_tracking_hook(Cfg, env={{}}) is None
        hook = make_neptune_hook(True, {{"a": 1}}, "run", {str(tmp_path)!r}, env={{}})
        assert hook is not None
        print(sorted(m for m in sys.modules if m == "neptune" or m.startswith("neptune.")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_token_falls_back_offline_with_one_warning(clean_env, tmp_path, caplog, capfd):
    cfg = CfgNode({"SOLVER": CfgNode({"BASE_LR": 0.01, "STEPS": (10, 20)}), "SEED": 3})
    (tmp_path / "best_checkpoint.json").write_text(
        json.dumps({"path": str(tmp_path / "model_best.pth"), "iteration": 24, "val_rmse": 76.0})
    )
    hook = NeptuneHook(cfg, "run-a", tmp_path, period=20, tags=("cpu", "test"))
    with caplog.at_level(logging.WARNING):
        train(hook)
    warnings = our_warnings(caplog)
    assert len(warnings) == 1
    assert "NEPTUNE_API_TOKEN is not set" in warnings[0].getMessage()
    assert hook.mode == "offline" and hook.run is None

    ops = offline_ops(tmp_path / ".neptune")
    loss = series(ops, "metrics/total_loss")
    assert [step for step, _ in loss] == [19, 39, 44]
    # Losses are smoothed like the TensorBoard writer: the median of the last 20 values.
    assert loss[0][1] == pytest.approx(np.median([10.0 / (i + 1) for i in range(20)]))
    assert series(ops, "metrics/val/rmse") == [(24, 76.0)]
    assert [s for s, _ in series(ops, "metrics/lr")] == [19, 39, 44]
    assert assigned(ops, "parameters/SEED") == [3]
    assert assigned(ops, "parameters/SOLVER/STEPS") == ["[10, 20]"]
    assert assigned(ops, "best_checkpoint/path") == [str(tmp_path / "model_best.pth")]
    assert assigned(ops, "best_checkpoint/val_rmse") == [76.0]
    assert assigned(ops, "sys/name") == ["run-a"]
    assert "NEPTUNE_DATA_DIRECTORY" not in tracking.os.environ


def test_unreachable_server_goes_offline_fast_and_never_shows_the_token(
    clean_env, tmp_path, caplog, capfd
):
    token = fake_token()
    clean_env.setenv("NEPTUNE_API_TOKEN", token)
    clean_env.setenv("NEPTUNE_PROJECT", "someone/motion-keypoints")
    clean_env.setenv("NEPTUNE_DATA_DIRECTORY", str(tmp_path / "nep"))
    hook = NeptuneHook({"a": {"b": [1, 2]}}, "run-b", tmp_path / "out", period=5, tags=["x"])
    hook.connect_timeout = 3.0
    start = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        train(hook, iterations=12, best=tmp_path / "out" / "model_best.pth")
    assert time.monotonic() - start < 15
    assert len(our_warnings(caplog)) == 1
    assert hook.mode == "offline"
    ops = offline_ops(tmp_path / "nep")
    assert [s for s, _ in series(ops, "metrics/total_loss")] == [4, 9, 11]
    assert assigned(ops, "best_checkpoint/path") == [str(tmp_path / "out" / "model_best.pth")]
    assert not (tmp_path / "out" / ".neptune").exists()

    out, err = capfd.readouterr()
    written = "".join(
        p.read_text(errors="replace") for p in (tmp_path / "nep").rglob("*") if p.is_file()
    )
    for text in (out, err, caplog.text, written):
        assert token not in text and SECRET not in text


def test_blocked_connection_is_detected_before_neptune_tries(clean_env, tmp_path, caplog):
    """A firewall that drops packets would make Neptune retry for minutes: the short TCP check
    sends the run offline without ever starting an online one."""
    import neptune

    clean_env.setenv("NEPTUNE_API_TOKEN", fake_token())
    clean_env.setenv("NEPTUNE_PROJECT", "someone/motion-keypoints")
    modes = []
    real_init = neptune.init_run

    def recording_init(**kwargs):
        modes.append(kwargs["mode"])
        return real_init(**kwargs)

    def blocked(address, timeout):
        assert timeout == hook.connect_timeout
        raise TimeoutError("timed out")

    clean_env.setattr(neptune, "init_run", recording_init)
    clean_env.setattr(tracking.socket, "create_connection", blocked)
    hook = NeptuneHook({"a": 1}, "run-c", tmp_path)
    with caplog.at_level(logging.WARNING):
        train(hook, iterations=3)
    assert modes == ["offline"]
    [warning] = our_warnings(caplog)
    assert "app.neptune.ai cannot be reached (TimeoutError)" in warning.getMessage()


def test_failing_online_start_falls_back_offline(clean_env, tmp_path, caplog):
    import neptune

    clean_env.setenv("NEPTUNE_API_TOKEN", fake_token())
    clean_env.setenv("NEPTUNE_PROJECT", "someone/motion-keypoints")
    real_init = neptune.init_run
    modes = []

    def flaky_init(**kwargs):
        modes.append(kwargs["mode"])
        if kwargs["mode"] != "offline":
            raise ConnectionError("no route to host")
        return real_init(**kwargs)

    clean_env.setattr(neptune, "init_run", flaky_init)
    clean_env.setattr(tracking, "_server_problem", lambda token, timeout: None)
    hook = NeptuneHook("SOLVER:\n  BASE_LR: 0.02\n", "run-d", tmp_path)
    with caplog.at_level(logging.WARNING):
        train(hook, iterations=3)
    assert modes == ["async", "offline"]
    [warning] = our_warnings(caplog)
    assert "starting the async run failed (ConnectionError)" in warning.getMessage()
    assert assigned(offline_ops(tmp_path / ".neptune"), "parameters/SOLVER/BASE_LR") == [0.02]


def test_missing_neptune_package_warns_once_and_does_nothing(clean_env, tmp_path, caplog):
    clean_env.setitem(sys.modules, "neptune", None)  # makes `import neptune` raise ImportError
    hook = NeptuneHook({"a": 1}, "run-e", tmp_path, period=1)
    with caplog.at_level(logging.WARNING):
        train(hook, iterations=5)
    [warning] = our_warnings(caplog)
    assert "not installed" in warning.getMessage()
    assert hook.run is None and not (tmp_path / ".neptune").exists()


@pytest.mark.parametrize("period", [2, 1000])  # fails in after_step / in after_train
def test_a_neptune_error_during_training_switches_the_hook_off(clean_env, tmp_path, caplog, period):
    clean_env.setenv("NEPTUNE_MODE", "offline")
    hook = NeptuneHook({"a": 1}, "run-f", tmp_path, period=period)
    storage = EventStorage(0)
    hook.trainer = SimpleNamespace(iter=1, storage=storage)
    with caplog.at_level(logging.WARNING):
        hook.before_train()
        assert hook.mode == "offline" and not our_warnings(caplog)  # offline on request: no warning
        assert tracking.os.environ["NEPTUNE_DATA_DIRECTORY"] == str(tmp_path / ".neptune")
        storage.put_scalar("total_loss", 1.0)
        hook.run = SimpleNamespace(stop=hook.run.stop)  # not subscriptable: logging raises
        hook.after_step()
        hook.after_step()
        hook.after_train()
    [warning] = our_warnings(caplog)
    assert "switched off" in warning.getMessage()
    assert hook.run is None
    assert "NEPTUNE_DATA_DIRECTORY" not in tracking.os.environ


def test_best_checkpoint_prefers_the_trainers_best_checkpoint_hook(tmp_path):
    hook = NeptuneHook({}, "run-g", tmp_path)
    hook.trainer = SimpleNamespace()
    assert hook.best_checkpoint() is None
    (tmp_path / "best_checkpoint.json").write_text(json.dumps({"path": "a.pth", "iteration": 3}))
    assert hook.best_checkpoint() == {"path": "a.pth", "iteration": 3}
    best = SimpleNamespace(best_record={"path": tmp_path / "b.pth", "val_rmse": 1.5})
    hook.trainer._hooks = [SimpleNamespace(), best]
    assert hook.best_checkpoint() == {"path": str(tmp_path / "b.pth"), "val_rmse": 1.5}


def test_hook_in_a_real_detectron2_trainer(clean_env, tmp_path):
    import itertools

    import torch
    from detectron2.engine import SimpleTrainer

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, batch):
            return {"loss_keypoint": (self.w * batch).pow(2).sum(), "loss_box": self.w.sum()}

    model = Model()
    data = itertools.repeat(torch.ones(2))
    trainer = SimpleTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.1))
    trainer.register_hooks([NeptuneHook({"SOLVER": {"MAX_ITER": 6}}, "run-h", tmp_path, period=2)])
    trainer.train(0, 6)
    ops = offline_ops(tmp_path / ".neptune")
    assert [s for s, _ in series(ops, "metrics/loss_keypoint")] == [1, 3, 5]
    assert [s for s, _ in series(ops, "metrics/total_loss")] == [1, 3, 5]


def test_neptune_names_never_make_a_value_a_namespace():
    from motion_keypoints.engine.tracking import neptune_name
    from motion_keypoints.meta import KEYPOINT_NAMES

    assert neptune_name("total_loss") == "total_loss"
    assert neptune_name("rpn/num_pos_anchors") == "rpn/num_pos_anchors"
    assert neptune_name("keypoints_rmse/rmse") == "val/rmse"
    nose = KEYPOINT_NAMES[0]
    assert neptune_name(f"keypoints_rmse/rmse/{nose}") == f"val/rmse_per_keypoint/{nose}"
    assert neptune_name("keypoints/AP") == "val/keypoints/AP"
    assert neptune_name("val/rmse") == "val/rmse"
    names = ["total_loss", "lr", "keypoints_rmse/rmse", "keypoints_rmse/missed", "keypoints/AP"]
    names += [f"keypoints_rmse/rmse/{k}" for k in KEYPOINT_NAMES] + ["a/b", "a/b/c", "a/b/c/d"]
    fields = [neptune_name(n) for n in names]
    assert len(set(fields)) == len(fields)
    for f in fields:  # no field is the namespace of another
        assert not any(g.startswith(f + "/") for g in fields), f


def test_validation_metrics_per_keypoint_and_best_checkpoint_reach_neptune(
    clean_env, tmp_path, caplog
):
    """The evaluator's results as detectron2's EvalHook stores them (flattened): overall and
    per-keypoint RMSE both arrive, Neptune stays on, and each new best checkpoint is logged."""
    from detectron2.evaluation.testing import flatten_results_dict

    from motion_keypoints.meta import KEYPOINT_NAMES

    clean_env.setenv("NEPTUNE_MODE", "offline")
    hook = NeptuneHook({"a": 1}, "run-val", tmp_path, period=5)
    storage = EventStorage(0)
    best = SimpleNamespace(best_record=None)
    trainer = SimpleNamespace(iter=0, storage=storage, _hooks=[best])
    hook.trainer = trainer
    with caplog.at_level(logging.WARNING), storage:
        hook.before_train()
        for it in range(20):
            trainer.iter = storage.iter = it
            storage.put_scalars(total_loss=10.0 / (it + 1), loss_keypoint=5.0 / (it + 1))
            if (it + 1) % 10 == 0:  # an evaluation, as EvalHook stores it
                res = {"rmse": 50.0 - it, "missed": 0.0}
                res.update({f"rmse/{k}": float(i + it) for i, k in enumerate(KEYPOINT_NAMES)})
                flat = flatten_results_dict({"keypoints_rmse": res, "keypoints": {"AP": 1.0}})
                storage.put_scalars(**flat, smoothing_hint=False)
                best.best_record = {"path": str(tmp_path / "model_best.pth"), "iteration": it}
            hook.after_step()
        trainer.iter = 20
        hook.after_train()
    assert our_warnings(caplog) == []
    ops = offline_ops(tmp_path / ".neptune")
    assert [s for s, _ in series(ops, "metrics/total_loss")] == [4, 9, 14, 19]
    assert [s for s, _ in series(ops, "metrics/loss_keypoint")] == [4, 9, 14, 19]
    assert series(ops, "metrics/val/rmse") == [(9, 41.0), (19, 31.0)]
    for i, k in enumerate(KEYPOINT_NAMES):
        assert series(ops, f"metrics/val/rmse_per_keypoint/{k}") == [(9, i + 9.0), (19, i + 19.0)]
    assert series(ops, "metrics/val/keypoints/AP") == [(9, 1.0), (19, 1.0)]
    assert assigned(ops, "best_checkpoint/path") == [str(tmp_path / "model_best.pth")] * 2
    assert assigned(ops, "best_checkpoint/iteration") == [9, 19]


def test_debug_mode_run_reads_back_what_was_logged(clean_env, tmp_path):
    """Neptune's debug mode keeps the run in memory: fetch the logged fields back."""
    from detectron2.evaluation.testing import flatten_results_dict

    from motion_keypoints.meta import KEYPOINT_NAMES

    clean_env.setenv("NEPTUNE_MODE", "debug")
    hook = NeptuneHook({"a": 1}, "run-debug", tmp_path, period=1)
    storage = EventStorage(0)
    trainer = SimpleNamespace(iter=0, storage=storage)
    trainer._hooks = [SimpleNamespace(best_record={"path": "m.pth", "val_rmse": 3.0})]
    hook.trainer = trainer
    with storage:
        hook.before_train()
        run = hook.run
        storage.put_scalars(total_loss=2.0)
        res = {"rmse": 3.0, **{f"rmse/{k}": 1.0 for k in KEYPOINT_NAMES}}
        storage.put_scalars(**flatten_results_dict({"keypoints_rmse": res}), smoothing_hint=False)
        hook.after_step()
        assert hook.run is not None  # not switched off by a namespace clash
        assert run["metrics/total_loss"].fetch_last() == 2.0
        assert run["metrics/val/rmse"].fetch_last() == 3.0
        assert run[f"metrics/val/rmse_per_keypoint/{KEYPOINT_NAMES[-1]}"].fetch_last() == 1.0
        assert run["best_checkpoint/path"].fetch() == "m.pth"
        hook.after_train()
