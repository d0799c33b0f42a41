"""How ``train.py`` starts its processes through detectron2's ``launch``.

``--num-gpus N`` is the number of processes per machine. With ``MODEL.DEVICE cuda`` (the real
configs) each process drives one GPU over NCCL, as in detectron2. With ``MODEL.DEVICE cpu`` the
processes are CPU workers joined by the gloo backend (the build-time patch of
``detectron2.engine.launch``, as D2Go's launcher does): the same DDP training, gathering and
rank-0 writing as on GPUs, on a machine without one.

The device is the one the user *asked* for (config file and overrides), read before the
config is set up: asking for more GPUs than the machine has is one error naming the CPU
alternative.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import UserError


class LaunchError(UserError, ValueError):
    """``--num-gpus``/``--num-machines`` that this machine cannot run."""


def requested_device(config_file: str, opts: Sequence[str] = ()) -> str:
    """``MODEL.DEVICE`` as asked: the last ``MODEL.DEVICE`` override, else the config file's
    (its ``_BASE_`` chain resolved), else detectron2's default ``cuda``."""
    pairs = list(zip(list(opts)[::2], list(opts)[1::2]))
    asked = [value for key, value in pairs if key == "MODEL.DEVICE"]
    if asked:
        return str(asked[-1])
    if config_file and Path(config_file).is_file():  # else setup_cfg's error names it
        from .config import CfgNode  # resolves the model_zoo: bases

        data = CfgNode.load_yaml_with_base(str(config_file), allow_unsafe=False)
        device = (data.get("MODEL") or {}).get("DEVICE")
        if device:
            return str(device)
    return "cuda"


def launch_backend(device: str, num_gpus: int, num_machines: int = 1, gpus_here=None) -> str:
    """The process-group backend of a run: ``"GLOO"`` (CPU processes) for ``MODEL.DEVICE cpu``,
    else ``"NCCL"``. LaunchError when the machine cannot run it: fewer than one process, or
    several GPU processes on a machine without that many GPUs (``gpus_here``: default
    ``torch.cuda.device_count()``). One GPU process on a machine without a GPU is left to
    ``setup_cfg``'s device check."""
    if num_gpus < 1 or num_machines < 1:
        raise LaunchError(f"--num-gpus {num_gpus} --num-machines {num_machines}: both must be at "
                          "least 1 (--num-gpus is the number of processes per machine)")
    if str(device).startswith("cpu"):
        return "GLOO"
    if gpus_here is None:
        import torch

        gpus_here = torch.cuda.device_count()
    if num_gpus > gpus_here and (num_gpus > 1 or num_machines > 1):
        use = f"--num-gpus {gpus_here} for its GPUs, or " if gpus_here else ""
        raise LaunchError(
            f"--num-gpus {num_gpus} (MODEL.DEVICE {device}): this machine has {gpus_here} GPU"
            f"{'' if gpus_here == 1 else 's'}. Use {use}{num_gpus} CPU processes with "
            f"--num-gpus {num_gpus} MODEL.DEVICE cpu"
        )
    return "NCCL"
