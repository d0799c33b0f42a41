"""``motion-keypoints COMMAND [ARGS]``: every command of the kit under one name (the console
script of the package, also ``python -m motion_keypoints``).

``motion-keypoints train --config-file ...`` runs exactly what ``python code/train.py
--config-file ...`` runs: the command module's ``main(argv)``, inside the one error boundary
(:func:`._run.run_command`). ``motion-keypoints --help`` lists the commands;
``motion-keypoints COMMAND --help`` is the command's own help. A command is spelled with ``_`` or
``-`` (``predict_video``, ``predict-video``).
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import List, Optional, Sequence

from ..errors import UserError
from ..io.outputs import OVERWRITE_FLAG
from . import options
from ._run import DEBUG_FLAG, run_command

PROG = "motion-keypoints"

#: Every command: its module under ``motion_keypoints.cli`` and one line for the overview.
COMMANDS = {
    "train": "train one model of the ensemble (Keypoint R-CNN or heatmap) into a run folder",
    "predict": "predict the test or validation images with a trained run",
    "ensemble": "fuse several runs' predictions into a submission, or score them on validation",
    "evaluate": "RMSE of a predictions or submission CSV against labels",
    "smooth": "temporal smoothing of a predictions or submission CSV",
    "predict_video": "keypoints of the main person in every frame of a video, and an overlay",
    "augmentation": "render augmentation sets from the training images",
    "check_data": "check a data folder before training",
    "check_submission": "check a submission CSV against the data's sample_submission.csv",
    "make_synthetic": "synthetic data in the competition layout",
    "demo": "the whole pipeline on synthetic data, with a closing summary",
    "export": "export a trained run to ONNX",
}


class UnknownCommand(UserError):
    pass


def overview() -> str:
    from .. import __version__

    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [ARGS ...]   ({PROG} COMMAND --help: the command's options)",
             "", f"motion-keypoints {__version__}: an ensemble of keypoint models, from data to "
             "submission.", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", "Every command also takes --overwrite (replace an existing output that is not",
              "an input or an artefact of the kit) and --debug (show an error's traceback).",
              f"python code/COMMAND.py ARGS runs the same as {PROG} COMMAND ARGS."]
    return "\n".join(lines)


def command_name(given: str) -> str:
    """The command ``given`` names (``-`` or ``_``); :class:`UnknownCommand` with the closest
    name otherwise."""
    name = given.replace("-", "_")
    if name in COMMANDS:
        return name
    close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UnknownCommand(f"{PROG}: unknown command {given!r}; {hint}"
                         f"'{PROG} --help' lists the commands")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    leading = []  # --debug / --overwrite before the command: the boundary finds them anywhere
    while argv and argv[0] in (DEBUG_FLAG, OVERWRITE_FLAG):
        leading.append(argv.pop(0))
    if not argv or argv[0] in ("-h", "--help"):  # no command: a usage error, as argparse's
        return run_command(_say(overview(), to_stderr=not argv, status=0 if argv else 2), [])
    if argv[0] == "--version":
        from .. import __version__

        return run_command(_say(f"{PROG} {__version__}"), [])
    try:
        name = command_name(argv[0])
    except UnknownCommand as exc:
        return run_command(_refuse(exc), [])  # the boundary's one line, exit 1
    module = importlib.import_module(f"{__package__}.{name}")
    with options.as_subcommand(PROG):
        return module.main(argv[1:] + leading)


def _say(text: str, to_stderr: bool = False, status: int = 0):
    """A command that prints ``text``: through the boundary, like every command (``| head``)."""
    def say(_argv: List[str]) -> int:
        print(text, file=sys.stderr if to_stderr else sys.stdout)
        return status

    return say


def _refuse(exc: UnknownCommand):
    def unknown_command(_argv: List[str]) -> int:
        raise exc

    return unknown_command


if __name__ == "__main__":
    raise SystemExit(main())
