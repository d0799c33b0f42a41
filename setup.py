"""motion-keypoints: an ensemble of keypoint models (Keypoint R-CNN, top-down HRNet) for body keypoints.

torch, torchvision and detectron2 are installed by ``scripts/setup_env.sh`` (``make test`` /
``make demo`` run it): detectron2 v0.6 is not on PyPI under its own name and is built from the
``pb1-detectron2`` sdist without its C++ extension.
"""

from setuptools import find_packages, setup

setup(
    name="motion-keypoints",
    version="0.1.0",
    description="Train an ensemble of keypoint models (Keypoint R-CNN, HRNet) and write a submission.csv",
    package_dir={"": "code"},
    packages=find_packages("code"),
    # the default augmentation config (a copy of configs/augmentation.yaml) for installed kits
    package_data={"motion_keypoints.augment": ["augmentation.yaml"]},
    python_requires=">=3.9",
    install_requires=[
        "numpy",
        "pandas",
        "opencv-python-headless",
        "albumentations>=1.4",
        "pycocotools",
        "tqdm",
        "tensorboard",
        "matplotlib",
        "pyyaml",
        "Pillow",
        "timm",  # HRNet backbones of the heatmap family
        "scipy",
        "av",  # PyAV (bundles FFmpeg with libx264): H.264 MP4 overlays that browsers play
    ],
    extras_require={
        "dev": ["pytest", "ruff", "nbclient", "nbformat", "ipykernel", "hypothesis", "neptune",
                "onnx", "onnxruntime"],  # the export extra, so its tests run
        "export": ["onnx", "onnxruntime"],  # export.py --format onnx, predict --backend onnxruntime
        "neptune": ["neptune"],
    },
)
