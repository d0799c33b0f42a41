"""The logic of ``check_data.py``: validate a data root, summarise it, optionally audit the
labels; the lines to show are returned (only the command line,
:mod:`motion_keypoints.cli.check_data`, prints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from ..io.problems import MAX_SHOWN, DataError, format_problems
from .layout import DataPaths, DataReport, validate_data_root

HINT = (
    "Fix the problems above, then run `python code/check_data.py --data-root {root}` again. "
    "Expected layout: {root}/train_df.csv, {root}/sample_submission.csv, "
    "{root}/images/train_imgs/*.jpg, {root}/images/test_imgs/*.jpg; CSV columns: image, then "
    "NAME_x, NAME_y for each keypoint (motion_keypoints.meta.CSV_COLUMNS)."
)


def format_report(report: DataReport) -> str:
    """The human summary of a :class:`DataReport` (warnings not included)."""
    s = report.summary
    lines = [f"Data root: {s['root']} (images checked: {s['check_images']})"]
    for split in ("train", "test", "test_labels"):
        if split not in s:
            continue
        info = s[split]
        text = f"{split}: {info['rows']} rows in {Path(info['csv']).name}"
        if "files_in_dir" in info:
            text += (f"; {info['files_in_dir']} files in {info['image_dir']} "
                     f"({info['unlisted_files']} not listed in the CSV)")
        lines.append(text)
        if "image_sizes" in info:
            lines.append("  image sizes: " + ", ".join(f"{k} ({v} images)"
                                                       for k, v in info["image_sizes"].items()))
        if "overrides" in info:
            lines.append(f"  label overrides: {info['overrides']} keypoints corrected by "
                         f"{Path(info['overrides_csv']).name}")
        if info.get("points_outside"):
            lines.append(f"  keypoints outside their image: {info['points_outside']} in "
                         f"{info['rows_with_points_outside']} rows (warnings; visibility 0)")
    lines.append(f"OK: the data is usable ({len(report.warnings)} warnings).")
    return "\n".join(lines)


@dataclass
class DataCheck:
    """What ``check_data.py`` shows: ``out`` (the summary, the audit's findings) for stdout,
    ``err`` (problems, warnings, the hint) for stderr, and the exit status ``code`` (0: usable)."""

    code: int = 0
    out: List[str] = field(default_factory=list)
    err: List[str] = field(default_factory=list)


def _audit_lines(data_root, audit_out, audit_top: int) -> List[str]:
    """Audit the labels, write the findings into ``audit_out``; the lines that say where."""
    from ..io.outputs import output_dir
    from .audit import audit as run_audit
    from .audit_report import format_findings, write_audit

    found = run_audit(data_root)
    with output_dir(audit_out, "audit", option="--audit-out"):
        written = write_audit(found, audit_out)
    return [format_findings(found, audit_top),
            f"audit: ranked findings in {written['csv']}; {len(found.flagged_images())} "
            f"pictures in {written['pictures']}; swap fixes to review in "
            f"{written['overrides']} (copy the rows you accept into "
            f"{DataPaths.from_root(data_root).overrides})"]


def check_data(data_root, check_images: str = "decode", max_shown: int = MAX_SHOWN,
               audit: bool = False, audit_out="outputs/audit", audit_top: int = 20,
               allow_far_points: bool = False) -> DataCheck:
    """Validate ``data_root``: its summary, or its problems and the hint, as lines to show
    (warnings too); with ``audit``, audit the labels too. ``code`` is 0 when the data is usable,
    1 otherwise. ``max_shown``: how many problems/warnings are listed (0: all). The audit's output
    folder is checked before any work (never an input, a folder, writable)."""
    if audit:
        from ..io.outputs import check_output_dir, register_inputs

        register_inputs(data_root)
        check_output_dir(audit_out, "audit", option="--audit-out")
    try:
        report = validate_data_root(data_root, check_images=check_images,
                                    allow_far_points=allow_far_points)
    except DataError as exc:
        return DataCheck(1, err=[f"check_data: {len(exc.problems)} problem(s) in {data_root}:",
                                 *format_problems(exc.problems, max_shown),
                                 HINT.format(root=data_root)])
    result = DataCheck(0, out=[format_report(report)],
                       err=[f"warning: {line}" for line in format_problems(report.warnings,
                                                                           max_shown)])
    if audit:
        result.out += _audit_lines(data_root, audit_out, audit_top)
    return result
