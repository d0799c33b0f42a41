"""``python code/export.py --run RUN --format onnx [--out DIR] [--checkpoint best|final]
[--image FILE] [KEY VALUE ...]``: export a trained run of either family (by ``run_info.json``
"family") to ONNX, for onnxruntime (``predict.py --backend onnxruntime``) or any ONNX runtime.

  python code/export.py --run outputs/tiny-cpu --format onnx      # -> outputs/tiny-cpu/export/
  python code/predict.py --run outputs/tiny-cpu --data-root outputs/synthetic --backend onnxruntime

Writes ``DIR/heatmap.onnx`` (heatmap run: crops -> heatmaps, dynamic batch) or
``DIR/keypoint_rcnn.onnx`` (Keypoint R-CNN: one resized image -> boxes, scores, keypoint
logits) and ``DIR/export.json`` (inputs, outputs, the run's fingerprint, the checkpoint and its
sha256, the kit version). Resizing, cropping, decoding, flip TTA and the mapping back to the
image stay in the kit (see ``motion_keypoints/export/exporters.py``). Every export is checked
with onnxruntime against the torch model before it is written. Config overrides are baked in
(predict with the same overrides). The Keypoint R-CNN is traced on an example image: ``--image``,
else the run's first validation (or test) image.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..export.manifest import FORMATS
from . import options
from ._run import run_command


def _main(argv: Sequence[str]) -> int:
    p = options.command_parser("export", __doc__, raw=True)
    options.add_run(p)
    p.add_argument("--format", required=True, choices=FORMATS, help="export format")
    options.add_out(p, "folder for the exported files", folder=True, default_text="RUN/export")
    options.add_checkpoint(p)
    p.add_argument("--image", default=None, metavar="FILE",
                   help="Keypoint R-CNN runs: the image (with a person) the model is traced and "
                        "checked on (default: the run's first validation or test image)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    a = p.parse_args(argv)
    from ..models.rcnn import import_detectron2
    from .predict import check_run

    check_run(Path(a.run), a.checkpoint)
    import_detectron2()
    from ..export.exporters import export_run

    m = export_run(a.run, a.out, a.checkpoint, a.opts, a.image)
    spec = m["files"]["model"]
    check = ", ".join(f"{k} {v:.2g}" for k, v in spec["check"].items() if k.startswith("max_"))
    print(f"exported {m['family']} run {a.run} ({m['checkpoint']}) to {m['dir']}/{spec['path']} "
          f"in {m['seconds']:.1f}s (opset {m['opset']}); onnxruntime vs torch on "
          f"{spec['check']['example']}: {check}; described in {m['dir']}/export.json")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
