"""The options several commands share, each declared here once with one help text.

Every command builds its parser with :func:`command_parser` (its ``prog`` is ``<command>.py``
when run as ``python code/<command>.py`` and ``motion-keypoints <command>`` under the one
command, :mod:`.main`) and adds the shared options with the ``add_*`` helpers. A helper's
``purpose`` says what the option means for that command (appended to the common text); its
default (or "required") is always in the help. ``--overwrite`` and ``--debug`` are taken by
the error boundary (:func:`._run.run_command`) for every command, not declared here.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Iterator, Optional, Sequence

#: ``motion-keypoints`` while the one command runs a sub-command (see :func:`as_subcommand`).
_PROG_PREFIX: Optional[str] = None


@contextlib.contextmanager
def as_subcommand(prefix: str) -> Iterator[None]:
    """Parsers built inside are named ``<prefix> <command>`` (the usage line and errors)."""
    global _PROG_PREFIX
    previous, _PROG_PREFIX = _PROG_PREFIX, prefix
    try:
        yield
    finally:
        _PROG_PREFIX = previous


def prog_name(command: str) -> str:
    return f"{_PROG_PREFIX} {command}" if _PROG_PREFIX else f"{command}.py"


def command_parser(command: str, description: Optional[str] = None, *, raw: bool = False,
                   **kwargs) -> argparse.ArgumentParser:
    """The parser of ``command``; ``raw`` keeps the description's line breaks (a docstring)."""
    if raw:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(prog=prog_name(command), description=description, **kwargs)


def _with_default(text: str, required: bool, default_text: Optional[str]) -> str:
    if required:
        return f"{text} (required)"
    return f"{text} (default: {default_text if default_text is not None else '%(default)s'})"


def _join(base: str, purpose: Optional[str]) -> str:
    return f"{base}: {purpose}" if purpose else base


def add_data_root(p, *, required: bool = True, purpose: Optional[str] = None,
                  default_text: Optional[str] = None) -> None:
    """``--data-root DIR``: a data folder in the competition layout."""
    base = "data folder in the competition layout (train_df.csv, sample_submission.csv, images/)"
    p.add_argument("--data-root", required=required, default=None, metavar="DIR",
                   help=_with_default(_join(base, purpose), required, default_text))


def add_out(p, what: str, *, folder: bool, required: bool = False, default=None,
            default_text: Optional[str] = None, metavar: Optional[str] = None,
            help_suffix: str = ""):
    """``--out``: where a command writes (``p`` may be a mutually exclusive group). Outputs are
    never an input or an artefact of the kit (:mod:`motion_keypoints.io.outputs`)."""
    kind = "a folder" if folder else "a file"
    text = f"{what} ({kind}; never an input{help_suffix})"
    return p.add_argument("--out", required=required, default=default,
                          metavar=metavar or ("DIR" if folder else "FILE"),
                          help=_with_default(text, required, default_text))


def int_at_least(minimum: int, note: str = ""):
    """An argparse type: an int of at least ``minimum`` (``note`` is added to the refusal)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(
                f"must be {'>= 0' if minimum == 0 else f'at least {minimum}'}{note}, got {n}")
        return n
    return parse


non_negative_workers = int_at_least(0, " (0: auto)")
positive_int = int_at_least(1)


def add_workers(p, what: str, auto: str) -> None:
    """``--workers N``: worker processes, 0 = auto (``auto`` says how many)."""
    p.add_argument("--workers", type=non_negative_workers, default=0,
                   help=f"{what}; 0 = auto: {auto} (default: %(default)s)")


def add_quiet(p, *, summary: bool = True) -> None:
    """``--quiet``: no progress bars (errors always print; the summary unless ``summary`` is
    False for this command)."""
    rest = "errors and the summary still print" if summary else "no summary either; errors still print"
    p.add_argument("--quiet", action="store_true",
                   help=f"no progress bars; {rest} (default: off)")


def add_batch_size(p, what: str) -> None:
    """``--batch-size N`` (at least 1, default 4)."""
    p.add_argument("--batch-size", type=positive_int, default=4,
                   help=f"{what} per batch (default: %(default)s)")


def add_run(p) -> None:
    """``--run RUN``: one trained run folder."""
    p.add_argument("--run", required=True, metavar="RUN",
                   help="training run folder (outputs/<run>), either family (required)")


def add_checkpoint(p, *, each: bool = False) -> None:
    """``--checkpoint best|final``."""
    from ..io.runs import CHECKPOINTS

    p.add_argument("--checkpoint", choices=sorted(CHECKPOINTS), default="best",
                   help=f"checkpoint of {'each' if each else 'the'} run (default: %(default)s)")


def add_max_problems(p) -> None:
    """``--max-problems N``: problems/warnings listed before '... and N more'."""
    from ..io.problems import MAX_SHOWN

    p.add_argument("--max-problems", type=int, default=MAX_SHOWN,
                   help="problems/warnings listed before '... and N more'; 0: all "
                        "(default: %(default)s)")


def add_allow_far_points(p) -> None:
    p.add_argument("--allow-far-points", action="store_true",
                   help="accept keypoints further than half the image size outside their image "
                        "(warnings instead of errors; default: off)")


# ------------------------------------------------------------------ the person to follow

#: What each person rule keeps (predict --person-rule, predict_video --rule).
PERSON_RULE_HELP = (
    "score = highest detection score, area = largest box, center = closest to the image centre "
    "(these three per image or frame); track = followed through the frames of each clip and "
    "camera (a frame where only someone else was detected gets no person); largest, central, "
    "longest = one tracked person per clip and camera: the largest or most central on average, "
    "or the one present longest"
)


def person_rules() -> Sequence[str]:
    from ..motion.select import RULES

    return [r for r in RULES if r != "at"]  # "at" comes from --person-at/--person-box


def add_person_rule(p, flag: str, default: str, note: str = "") -> None:
    """The person-selection rule under ``flag`` (``--person-rule`` / ``--rule``)."""
    p.add_argument(flag, choices=person_rules(), default=default,
                   help=f"which detected person is kept{note}: {PERSON_RULE_HELP} "
                        "(default: %(default)s)")


def add_person_at(p) -> None:
    """``--person-at X,Y`` and ``--person-box X1,Y1,X2,Y2``: the person given by the user."""
    p.add_argument("--person-at", default=None, metavar="X,Y",
                   help="follow the person at this pixel of the first frame with anyone in it "
                        "(their box holds it, or the nearest); replaces the rule "
                        "(default: none)")
    p.add_argument("--person-box", default=None, metavar="X1,Y1,X2,Y2",
                   help="follow the person whose box best overlaps this box in the first frame "
                        "with anyone in it; replaces the rule (default: none)")


def parse_person_at(p: argparse.ArgumentParser, person_at: Optional[str],
                    person_box: Optional[str]) -> Optional[list]:
    """The point or box of ``--person-at``/``--person-box`` as floats, None when neither is
    given; a usage error (exit 2) for both or a malformed value."""
    if person_at is not None and person_box is not None:
        p.error("give --person-at or --person-box, not both")
    opt, value, count = (("--person-at", person_at, 2) if person_at is not None
                         else ("--person-box", person_box, 4))
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != count or (count == 4 and not (
            numbers[0] < numbers[2] and numbers[1] < numbers[3])):
        p.error(f"{opt} {value}: give {'X,Y' if count == 2 else 'X1,Y1,X2,Y2 with X1<X2, Y1<Y2'}"
                " in pixels of the first frame")
    return numbers
