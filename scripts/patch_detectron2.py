"""Prepare the unpacked ``pb1-detectron2==0.6`` sdist for a pure-Python build.

The sdist ships upstream v0.6's Python files but not its C++ sources, and its setup.py only
packages the model-zoo YAMLs when a top-level ``configs/`` folder exists. This script:

1. copies ``detectron2/model_zoo/configs`` to ``configs/`` so the YAMLs are packaged;
2. builds no extension module (the C++ ops are not needed for Keypoint R-CNN: ROIAlign and NMS
   come from torchvision) and adds an empty ``detectron2/_C.py`` so ``from detectron2 import _C``
   still imports (the fast COCO evaluator is not available: use ``use_fast_impl=False``).

Usage: python scripts/patch_detectron2.py SOURCE_DIR
"""

import shutil
import sys
from pathlib import Path

# Module-level functions collect_env_info() (called by default_setup) asks the extension for.
PLACEHOLDER = '''"""Placeholder: this detectron2 was built without its C++ extension."""

PLACEHOLDER_VERSION = 1


def get_compiler_version():
    return "none (pure-Python build, no C++ extension)"


def get_cuda_version():
    return "none (pure-Python build, no C++ extension)"


def has_cuda():
    return False
'''


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
    placeholder.write_text(PLACEHOLDER)
    n = len(list(top.rglob("*.yaml")))
    print(f"[setup] patched {src.name}: no C++ extension, {n} model-zoo YAMLs packaged")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
