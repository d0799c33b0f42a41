"""Prepare the unpacked ``pb1-detectron2==0.6`` sdist for a pure-Python build on today's libraries.

The sdist ships upstream v0.6's Python files but not its C++ sources, and its setup.py only
packages the model-zoo YAMLs when a top-level ``configs/`` folder exists. This script patches the
*sources* before ``pip install``, so the installed detectron2 works on its own in the venv (a
notebook or detectron2's own tools need no import from the kit):

1. copies ``detectron2/model_zoo/configs`` to ``configs/`` so the YAMLs are packaged;
2. builds no extension module (Keypoint R-CNN needs none of the C++ ops: ROIAlign and NMS come
   from torchvision) and adds a placeholder ``detectron2/_C.py`` that answers the questions
   ``collect_env_info()`` asks (the fast COCO evaluator is not available: ``use_fast_impl=False``);
3. source patches for today's Pillow, NumPy, Python and torch, and for multi-process training on
   CPU: ``launch(..., backend="GLOO")`` spawns CPU worker processes joined by gloo, as D2Go's
   launcher does (its default ``backend="NCCL"`` is v0.6's launcher unchanged), and DDP of a
   CPU model gets no ``device_ids`` (``PATCHES`` below, each with the reason). Every patch must
   match exactly once, or the build stops: a different sdist is never patched blindly.

Usage: python scripts/patch_detectron2.py SOURCE_DIR
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from pathlib import Path

# Module-level functions collect_env_info() (called by default_setup) asks the extension for.
PLACEHOLDER = '''"""Placeholder: this detectron2 was built without its C++ extension."""

PLACEHOLDER_VERSION = 1
PATCH_ID = "{patch_id}"  # sha256 of scripts/patch_detectron2.py: setup_env.sh rebuilds when it changes


def get_compiler_version():
    return "none (pure-Python build, no C++ extension)"


def get_cuda_version():
    return "none (pure-Python build, no C++ extension)"


def has_cuda():
    return False
'''

#: (file, old text, new text, why). Applied in order; each ``old`` must occur exactly once.
PATCHES = [
    (
        "detectron2/data/transforms/transform.py",
        "interp=Image.LINEAR,",
        "interp=Image.BILINEAR,",
        "Pillow 10 removed Image.LINEAR (it was an alias of BILINEAR)",
    ),
    (
        "detectron2/model_zoo/model_zoo.py",
        "import pkg_resources\n",
        "import importlib.resources\n",
        "pkg_resources is deprecated (warns at import) and gone from setuptools >= 82",
    ),
    (
        "detectron2/model_zoo/model_zoo.py",
        'cfg_file = pkg_resources.resource_filename(\n        "detectron2.model_zoo", '
        'os.path.join("configs", config_path)\n    )',
        'cfg_file = str(\n        importlib.resources.files("detectron2.model_zoo").joinpath('
        '"configs", config_path)\n    )',
        "pkg_resources.resource_filename -> importlib.resources",
    ),
    (
        "detectron2/export/__init__.py",
        "from .api import *\n",
        "try:  # the Caffe2 exporters need caffe2, which torch 2.x no longer ships\n"
        "    from .api import *\n"
        "except ImportError:  # pragma: no cover\n"
        "    pass\n",
        "detectron2.export imported caffe2 unconditionally, so TorchScript export was unusable",
    ),
    (
        "detectron2/data/common.py",
        "cur_idx = self._rng.sample(self._fallback_candidates, k=1)[0]",
        "cur_idx = self._rng.sample(sorted(self._fallback_candidates), k=1)[0]",
        "random.sample() no longer takes a set (Python >= 3.11): TypeError when a mapper returns None",
    ),
    (
        "detectron2/engine/hooks.py",
        "    def state_dict(self):\n"
        "        if isinstance(self.scheduler, torch.optim.lr_scheduler._LRScheduler):",
        "    def state_dict(self):\n"
        "        if isinstance(self.scheduler, _TORCH_LR_SCHEDULER):",
        "torch's schedulers derive from LRScheduler now: they were not saved, --resume restarted them",
    ),
    (
        "detectron2/engine/hooks.py",
        "    def load_state_dict(self, state_dict):\n"
        "        if isinstance(self.scheduler, torch.optim.lr_scheduler._LRScheduler):",
        "    def load_state_dict(self, state_dict):\n"
        "        if isinstance(self.scheduler, _TORCH_LR_SCHEDULER):",
        "... and not restored",
    ),
    (
        "detectron2/engine/hooks.py",
        "class LRScheduler(HookBase):",
        "_TORCH_LR_SCHEDULER = getattr(\n"
        '    torch.optim.lr_scheduler, "LRScheduler", torch.optim.lr_scheduler._LRScheduler\n'
        ")\n\n\nclass LRScheduler(HookBase):",
        "the base class of every torch scheduler, old and new",
    ),
    (
        "detectron2/modeling/anchor_generator.py",
        "torch.meshgrid(shifts_y, shifts_x)",
        'torch.meshgrid(shifts_y, shifts_x, indexing="ij")',
        "torch warns when meshgrid's indexing is implicit (the old default was 'ij')",
    ),
    (
        "detectron2/structures/keypoints.py",
        "        keypoints = torch.as_tensor(keypoints, dtype=torch.float32, device=device)",
        "        if not isinstance(keypoints, torch.Tensor):\n"
        "            keypoints = np.asarray(keypoints, dtype=np.float32)\n"
        "        keypoints = torch.as_tensor(keypoints, dtype=torch.float32, device=device)",
        "a list of ndarrays -> tensor is very slow and warns ('Creating a tensor from a list of "
        "numpy.ndarrays')",
    ),
    # Multi-process training on CPU (gloo), as D2Go's launcher does. launch() gets a ``backend``
    # argument; its default, "NCCL", is v0.6's behaviour unchanged (CUDA runs as before).
    (
        "detectron2/engine/launch.py",
        "    args=(),\n    timeout=DEFAULT_TIMEOUT,\n):\n",
        "    args=(),\n    timeout=DEFAULT_TIMEOUT,\n    backend=\"NCCL\",\n):\n",
        "launch() asserted CUDA: a backend argument, \"GLOO\" runs CPU worker processes",
    ),
    (
        "detectron2/engine/launch.py",
        "        args (tuple): arguments passed to main_func\n",
        "        args (tuple): arguments passed to main_func\n"
        "        backend (str): \"NCCL\" (default): one process per GPU; \"GLOO\": CPU processes\n"
        "            (``num_gpus_per_machine`` of them per machine, no GPU used)\n",
        "... documented",
    ),
    (
        "detectron2/engine/launch.py",
        "                args,\n                timeout,\n            ),\n",
        "                args,\n                timeout,\n                backend,\n            ),\n",
        "... passed to the workers",
    ),
    (
        "detectron2/engine/launch.py",
        "    args,\n    timeout=DEFAULT_TIMEOUT,\n):\n"
        "    assert torch.cuda.is_available(), \"cuda is not available. Please check your installation.\"\n",
        "    args,\n    timeout=DEFAULT_TIMEOUT,\n    backend=\"NCCL\",\n):\n"
        "    cuda = backend.upper() == \"NCCL\"\n"
        "    if cuda:\n"
        "        assert torch.cuda.is_available(), \"cuda is not available. Please check your installation.\"\n"
        "    else:  # the machine's cores shared by its CPU processes (torchrun sets OMP_NUM_THREADS=1)\n"
        "        import os\n\n"
        "        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_gpus_per_machine))\n",
        "... a GLOO worker needs no CUDA and does not oversubscribe the cores",
    ),
    (
        "detectron2/engine/launch.py",
        '            backend="NCCL",\n            init_method=dist_url,',
        "            backend=backend,\n            init_method=dist_url,",
        "... the process group of the asked backend",
    ),
    (
        "detectron2/engine/launch.py",
        "    assert num_gpus_per_machine <= torch.cuda.device_count()\n"
        "    torch.cuda.set_device(local_rank)\n",
        "    if cuda:\n"
        "        assert num_gpus_per_machine <= torch.cuda.device_count()\n"
        "        torch.cuda.set_device(local_rank)\n",
        "... and selects no GPU",
    ),
    (
        "detectron2/engine/defaults.py",
        "    if \"device_ids\" not in kwargs:\n        kwargs[\"device_ids\"] = [comm.get_local_rank()]\n",
        "    if \"device_ids\" not in kwargs and any(p.is_cuda for p in model.parameters()):\n"
        "        kwargs[\"device_ids\"] = [comm.get_local_rank()]\n",
        "DistributedDataParallel refuses device_ids for a CPU model (a GLOO run's DefaultTrainer)",
    ),
    (
        "detectron2/utils/comm.py",
        "    storage = torch.ByteStorage.from_buffer(buffer)\n"
        "    tensor = torch.ByteTensor(storage).to(device=device)\n",
        "    tensor = torch.frombuffer(bytearray(buffer), dtype=torch.uint8).to(device=device)\n",
        "TypedStorage is deprecated: every gather of a multi-process run warned",
    ),
]

#: NumPy >= 1.24 removed these aliases of the builtins (used by some evaluators).
NUMPY_ALIASES = {r"\bnp\.bool\b": "bool", r"\bnp\.int\b": "int", r"\bnp\.float\b": "float"}


def patch_sources(src: Path) -> int:
    n = 0
    for rel, old, new, why in PATCHES:
        path = src / rel
        text = path.read_text()
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"{path}: expected 1 occurrence of the text to patch ({why}), found {count}")
        path.write_text(text.replace(old, new))
        n += 1
    for path in sorted((src / "detectron2").rglob("*.py")):
        text = path.read_text()
        new_text = text
        for pattern, repl in NUMPY_ALIASES.items():
            new_text = re.sub(pattern, repl, new_text)
        if new_text != text:
            path.write_text(new_text)
            n += 1
    return n


def main(src: Path) -> None:
    setup_py = src / "setup.py"
    text = setup_py.read_text()
    if "ext_modules=get_extensions()," not in text:
        raise SystemExit(f"{setup_py}: unexpected content, is this the pb1-detectron2 0.6 sdist?")
    text = text.replace("ext_modules=get_extensions(),", "ext_modules=[],")
    text = text.replace('cmdclass={"build_ext": torch.utils.cpp_extension.BuildExtension},', "")
    setup_py.write_text(text)

    zoo = src / "detectron2" / "model_zoo" / "configs"
    top = src / "configs"
    if not top.exists():
        shutil.copytree(zoo, top)
    placeholder = src / "detectron2" / "_C.py"
    patch_id = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    placeholder.write_text(PLACEHOLDER.replace("{patch_id}", patch_id))
    n_patched = patch_sources(src)
    n = len(list(top.rglob("*.yaml")))
    print(
        f"[setup] patched {src.name}: no C++ extension, {n} model-zoo YAMLs packaged, "
        f"{n_patched} source patches (today's Pillow/NumPy/Python/torch, CPU multi-process)"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
