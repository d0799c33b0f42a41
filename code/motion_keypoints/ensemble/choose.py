"""Stage 2 of the ensemble: the test-time options chosen on the members' validation
predictions (:func:`choose_plan`): flip TTA per member, the fusion method and weights, the
left/right-consistent fusion; every choice notes the validation RMSEs it was made on."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np

from .fuse import EnsembleError, keypoint_rmse_weights, rmse_weights
from .fusing import fused_rmse
from .members import Loaded, member_keypoint_rmse
from .options import FuseOptions, Plan


def _with(plan: Plan, **changes) -> Plan:
    """A copy of ``plan`` with ``changes`` (its own notes list)."""
    fields = {**plan.__dict__, "notes": list(plan.notes), "method_rmse": dict(plan.method_rmse)}
    return Plan(**{**fields, **changes})


def _choose_flip(loaded: Loaded, val: Loaded | None, flip: str, opts: FuseOptions) -> Tuple[List[bool], List[str]]:
    """Per member: use its flip-TTA predictions (True) or its ``_noflip`` file (False)."""
    m = len(loaded.main)
    if flip == "on" or all(nf is None for nf in loaded.noflip):
        return [True] * m, []
    if flip == "off":
        return [nf is None for nf in loaded.noflip], ["flip TTA: off (--flip off) where a member "
                                                       "has predictions without it"]
    if val is None or all(nf is None for nf in val.noflip):
        return [True] * m, ["flip TTA: as predicted (auto: no predictions_val_noflip.csv to "
                            "choose on)"]
    one = Plan("mean", "rmse", [True])
    choice, parts = [], []
    for i, lab in enumerate(loaded.labels):
        if val.noflip[i] is None or loaded.noflip[i] is None:
            choice.append(True)
            parts.append(f"{lab} as predicted")
            continue
        on = fused_rmse(val, [val.main[i]], one, opts)
        off = fused_rmse(val, [val.noflip[i]], one, opts)
        choice.append(on <= off)
        parts.append(f"{lab} {'on' if on <= off else 'off'} ({on:.3f} with, {off:.3f} without)")
    return choice, ["flip TTA per member, chosen on validation RMSE: " + "; ".join(parts)]


def _explicit_weights(loaded: Loaded, plan: Plan) -> Plan:
    """Weights of an explicitly given ``weighted`` method."""
    if plan.method != "weighted":
        return plan
    if plan.weight_by == "score":
        return _with(plan, use_scores=True)
    if plan.weight_by == "rmse":
        rmses = [m.info.get("val_rmse") for m in loaded.main]
        for m, r in zip(loaded.main, rmses):
            if not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
                raise EnsembleError(
                    f"--method weighted --weight-by rmse needs a positive val_rmse in every "
                    f"run_info.json; {m.run_dir} has {r!r} (a run trained without validation): "
                    "use --weight-by score or another method"
                )
        return _with(plan, weights=rmse_weights(rmses))
    val = loaded.val("--weight-by keypoint")
    return _with(plan, weights=_keypoint_weights(val, plan))


def _keypoint_weights(val: Loaded, plan: Plan) -> np.ndarray:
    per_kp = np.stack([member_keypoint_rmse(v, val.train_df(), val.paths.train_csv)
                       for v in val.chosen(plan)])
    try:
        return keypoint_rmse_weights(per_kp)
    except ValueError as exc:
        raise EnsembleError(f"--weight-by keypoint: {exc}") from None


def _candidates(val: Loaded, plan: Plan) -> Dict[str, Plan]:
    """The fusions ``auto`` tries: mean, median and robust (three or more members), weighted by
    each member's validation RMSE and per keypoint."""
    m = len(val.main)
    out = {"mean": _with(plan, method="mean", weights=None)}
    if m >= 3:
        out["median"] = _with(plan, method="median", weights=None)
        out["robust"] = _with(plan, method="robust", weights=None)
    one = Plan("mean", "rmse", [True])
    member = [fused_rmse(val, [p], one, FuseOptions()) for p in val.chosen(plan)]
    if all(r > 0 for r in member):
        out["weighted by rmse"] = _with(plan, method="weighted", weight_by="rmse",
                                        weights=rmse_weights(member))
    try:
        out["weighted by keypoint"] = _with(plan, method="weighted", weight_by="keypoint",
                                            weights=_keypoint_weights(val, plan))
    except EnsembleError:
        pass
    return out


def _choose_lr(loaded: Loaded, val: Loaded | None, plan: Plan, lr_align: str,
               opts: FuseOptions) -> Plan:
    if len(loaded.main) < 2 or lr_align == "off":
        return plan
    if val is not None and len(loaded.main) == 2:  # two cannot decide: anchor on the better one
        one = Plan("mean", "rmse", [True])
        member = [fused_rmse(val, [p], one, opts) for p in val.chosen(plan)]
        plan = _with(plan, anchor=int(np.argmin(member)))
    if lr_align == "on":
        return _with(plan, lr=True)
    if val is None:
        plan.notes.append("left/right alignment: off (auto: no validation predictions to show it "
                          "helps)")
        return plan
    probe = plan if plan.method != "auto" else _with(plan, method="mean", weights=None)
    off = fused_rmse(val, val.chosen(plan), probe, opts)
    on = fused_rmse(val, val.chosen(plan), _with(probe, lr=True), opts)
    plan = _with(plan, lr=on < off)
    plan.notes.append(f"left/right alignment: {'on' if on < off else 'off'}, chosen on "
                      f"validation ({probe.method} fusion RMSE {off:.3f} without, {on:.3f} with)")
    return plan


def choose_plan(loaded: Loaded, method: str = "auto", weight_by: str = "rmse", flip: str = "auto",
                lr_align: str = "auto", opts: FuseOptions | None = None) -> Plan:
    """Stage 2: the test-time options. ``auto`` choices are made on the members' validation
    predictions (:meth:`Loaded.val`); every choice adds a note with the RMSEs it was made on."""
    opts = opts or FuseOptions()
    needs_val = "auto" in (method, flip, lr_align)
    val = loaded.val() if needs_val else None
    flips, notes = _choose_flip(loaded, val, flip, opts)
    plan = Plan(method, weight_by, flips, notes=notes)
    plan = _explicit_weights(loaded, plan)
    plan = _choose_lr(loaded, val, plan, lr_align, opts)
    if method != "auto":
        return plan
    if val is None or len(loaded.main) < 2:
        why = "one member" if len(loaded.main) < 2 else (
            "not every member has predictions_val.csv to choose on")
        plan = _with(plan, method="mean")
        plan.notes.append(f"method auto: mean ({why})")
        return plan
    scored = {name: fused_rmse(val, val.chosen(p), p, opts)
              for name, p in _candidates(val, plan).items()}
    best = min(scored, key=lambda n: (scored[n], list(scored).index(n)))
    plan = _with(_candidates(val, plan)[best], method_rmse=scored)
    plan.notes.append(
        f"method auto: {best}, chosen on validation RMSE ("
        + ", ".join(f"{n} {v:.3f}" for n, v in scored.items()) + ")"
        + (" — on these same validation images: optimistic" if loaded.split == "val" else ""))
    return plan
