"""The weights check before any long work: ``MODEL.WEIGHTS`` resolvable (offline: how to proceed),
and the trained model ``--eval-only`` validates."""

from __future__ import annotations

from pathlib import Path

from ..errors import SetupError

SCRATCH_HINT = (
    "Training from scratch (MODEL.WEIGHTS '') needs GroupNorm and no frozen stages: "
    "MODEL.RESNETS.NORM GN MODEL.FPN.NORM GN MODEL.BACKBONE.FREEZE_AT 0 (see configs/tiny-cpu.yaml), "
    "and a lower SOLVER.BASE_LR helps."
)


def check_weights(cfg) -> None:
    """Resolve ``MODEL.WEIGHTS`` before any long work; offline, say how to proceed."""
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        return
    if "://" not in weights:
        if not Path(weights).is_file():
            raise SetupError(
                f"MODEL.WEIGHTS {weights} does not exist. Pass an existing checkpoint file, or "
                f"MODEL.WEIGHTS '' to train from scratch. {SCRATCH_HINT}"
            )
        return
    from detectron2.utils.file_io import PathManager

    try:
        PathManager.get_local_path(weights)
    except Exception as exc:  # network errors come in many types
        raise SetupError(
            f"could not download MODEL.WEIGHTS {weights} ({type(exc).__name__}: {exc}).\n"
            "Offline? Download the checkpoint on a machine with internet and pass the local file: "
            "MODEL.WEIGHTS /path/to/model_final_a6e10b.pkl — or train from scratch with "
            f"MODEL.WEIGHTS ''. {SCRATCH_HINT}"
        ) from exc


def eval_weights(cfg, resume: bool = False) -> str:
    """The trained model ``--eval-only`` validates: with ``resume`` the run's last checkpoint,
    else its ``model_best.pth``, else its ``model_final.pth``, else ``MODEL.WEIGHTS`` when that
    is a checkpoint a kit training wrote (it records its run). Anything else (no model: the
    RMSE of untrained or only pre-trained weights means nothing) is a one-line SetupError.
    A checkpoint of the run folder must belong to its run (RunError otherwise)."""
    from ..io.runs import CHECKPOINTS
    from .checkpoint import CheckpointError, check_checkpoint_run, checkpoint_run

    out = Path(cfg.OUTPUT_DIR)
    names = [CHECKPOINTS["best"], CHECKPOINTS["final"]]
    last = out / "last_checkpoint"
    if resume and last.is_file():
        names.insert(0, last.read_text().strip())
    for name in names:
        if name and (out / name).is_file():
            check_checkpoint_run(out / name, out)
            return str(out / name)
    weights = str(cfg.MODEL.WEIGHTS)
    if weights and "://" not in weights and Path(weights).is_file():
        try:
            if checkpoint_run(weights) is not None:
                return weights
        except CheckpointError:
            pass
    given = f"MODEL.WEIGHTS {weights}" if weights else "MODEL.WEIGHTS ''"
    raise SetupError(
        f"--eval-only: {out} has no trained model ({' / '.join(names)} missing) and {given} is "
        "not a checkpoint of a kit training: train the run first (without --eval-only; "
        "--resume finishes an interrupted one), or pass MODEL.WEIGHTS <run>/model_best.pth"
    )
