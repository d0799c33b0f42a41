"""The installed detectron2 works on its own: patched at build time, no kit import needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest


def _fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter that imports nothing of the kit."""
    return subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_detectron2_imports_on_its_own_in_a_fresh_interpreter():
    res = _fresh(
        """
        import sys
        from detectron2 import model_zoo
        from detectron2.data import transforms as T
        from detectron2.engine import DefaultTrainer
        import detectron2.export  # imported caffe2 before the build-time patch
        path = model_zoo.get_config_file("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml")
        cfg = model_zoo.get_config("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml")
        assert cfg.MODEL.KEYPOINT_ON, cfg.MODEL.KEYPOINT_ON
        T.ExtentTransform((0, 0, 10, 10), (5, 5))  # Image.LINEAR before the patch
        assert not any(m.startswith("motion_keypoints") for m in sys.modules), "kit imported"
        print(path)
        """
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("keypoint_rcnn_R_50_FPN_3x.yaml")


def test_map_dataset_falls_back_when_a_mapper_returns_none():
    # random.sample() on a set is a TypeError on Python >= 3.11 (patched at build time).
    res = _fresh(
        """
        from detectron2.data.common import MapDataset
        ds = MapDataset(list(range(10)), lambda x: None if x == 3 else x)
        assert ds[3] in range(10) and ds[3] != 3, ds[3]
        """
    )
    assert res.returncode == 0, res.stderr[-3000:]


def test_lr_scheduler_hook_saves_and_restores_torch_schedulers():
    # torch's StepLR derives from LRScheduler, not the old _LRScheduler: without the patch the
    # hook saved nothing and --resume restarted the schedule at iteration 0.
    res = _fresh(
        """
        import torch
        from detectron2.engine import hooks
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=1.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5)
        for _ in range(12):
            opt.step(); sched.step()
        hook = hooks.LRScheduler(opt, sched)
        state = hook.state_dict()
        assert state.get("last_epoch") == 12, state
        opt2 = torch.optim.SGD([p], lr=1.0)
        sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=5)
        hooks.LRScheduler(opt2, sched2).load_state_dict(state)
        assert sched2.last_epoch == 12, sched2.last_epoch
        """
    )
    assert res.returncode == 0, res.stderr[-3000:]


# ------------------------------------------------------------------- the kit's own packaging

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_pyproject_declares_the_package_the_command_and_the_extras():
    meta = _pyproject()
    project = meta["project"]
    assert project["name"] == "motion-keypoints"
    assert project["scripts"] == {"motion-keypoints": "motion_keypoints.cli.main:main"}
    extras = project["optional-dependencies"]
    assert {"dev", "export", "neptune", "notebooks"} <= set(extras)
    others = {d for name, deps in extras.items() if name != "dev" for d in deps}
    assert others <= set(extras["dev"]), "dev installs every extra, so all their tests run"
    st = meta["tool"]["setuptools"]
    assert st["package-dir"] == {"": "code"}
    for package, files in st["package-data"].items():
        folder = REPO / "code" / package.replace(".", "/")
        assert all((folder / f).is_file() for f in files), (package, files)


def test_the_installed_console_script_is_the_one_command():
    from importlib.metadata import entry_points, version

    import motion_keypoints
    from motion_keypoints.cli.main import main

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "motion-keypoints"]
    assert ep.load() is main
    assert version("motion-keypoints") == motion_keypoints.__version__


@pytest.mark.slow
def test_wheel_holds_the_packages_the_script_and_the_augmentation_config(tmp_path):
    """A wheel built from pyproject.toml alone (a copy of the tree: no build files in the
    checkout) holds every package, the default augmentation config and the console script."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "code", src / "code", ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("motion_keypoints-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        scripts = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    packages = {p.relative_to(REPO / "code").as_posix() + "/__init__.py"
                for p in (REPO / "code" / "motion_keypoints").rglob("*")
                if (p / "__init__.py").is_file()}
    assert packages <= names, sorted(packages - names)
    assert "motion_keypoints/augment/augmentation.yaml" in names
    assert "motion-keypoints = motion_keypoints.cli.main:main" in scripts
