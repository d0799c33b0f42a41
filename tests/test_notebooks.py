"""The notebooks run top to bottom, headless (nbclient), on synthetic data they make themselves
(01) or on the output of the one-command demo (02).

The kernel is this interpreter (a kernelspec written to a temporary folder): nothing is
registered globally, and the kit under test is the one these tests import.
"""

import json
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from motion_keypoints.data.layout import load_train_df
from motion_keypoints.io.tables import keypoints_array, read_keypoint_csv

REPO = Path(__file__).resolve().parents[1]
KERNEL = "motion-keypoints-test"


def execute(name: str, tmp_path: Path, timeout: int = 120):
    """Execute ``notebooks/<name>`` with its working folder ``tmp_path/notebooks`` (so its
    ``../outputs`` is ``tmp_path/outputs``); return the executed notebook."""
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "motion-keypoints (tests)", "language": "python",
    }))
    manager = KernelManager(kernel_name=KERNEL,
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    NotebookClient(nb, km=manager, timeout=timeout,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def text_of(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def images_in(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))


def test_notebooks_are_stored_without_outputs():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
def test_data_exploration_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("MOTION_KEYPOINTS_DATA", raising=False)  # the synthetic default
    nb = execute("01_data_exploration.ipynb", tmp_path)
    out = tmp_path / "outputs" / "notebooks" / "01_data_exploration"
    assert (out / "synthetic" / "train_df.csv").is_file()
    assert (out / "audit" / "audit.csv").is_file()
    text = "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert "audit: 0 findings in 0 of 120 images" in text  # clean synthetic labels
    assert "audit: 3 findings in 3 of 120 images (2 swap, 1 isolated_point)" in text  # planted
    assert "audit: 1 finding in 1 of 120 images (1 isolated_point)" in text  # swaps fixed
    assert images_in(nb) >= 4  # overlays, distributions, bone lengths, planted findings


@pytest.mark.slow
def test_results_notebook_says_to_run_make_demo_without_a_demo_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTION_KEYPOINTS_DEMO", str(tmp_path / "nowhere"))
    with pytest.raises(CellExecutionError) as err:
        execute("02_results.ipynb", tmp_path)
    assert "FileNotFoundError" in str(err.value)
    assert f"no demo output in {tmp_path / 'nowhere'}" in str(err.value)
    assert "run `make demo`" in str(err.value)


@pytest.mark.slow
def test_results_notebook_runs_on_the_demo_output(demo_output, tmp_path, monkeypatch):
    from motion_keypoints.evaluation import metrics
    from motion_keypoints.evaluation.evaluate import truth_for
    from motion_keypoints.meta import KEYPOINT_NAMES

    demo, submission, _ = demo_output
    monkeypatch.setenv("MOTION_KEYPOINTS_DEMO", str(demo))  # the kernel inherits the environment
    nb = execute("02_results.ipynb", tmp_path)
    text = "\n".join(text_of(c) for c in nb.cells if c.cell_type == "code")
    assert f"demo folder: {demo.resolve()}\n" in text
    printed = dict(re.findall(r"ensemble RMSE \((val|test)\): (\S+) px", text))
    assert set(printed) == {"val", "test"}

    data = demo / "synthetic"
    runs = sorted(p.name for p in (demo / "runs").iterdir() if (p / "run_info.json").is_file())
    assert runs == ["demo", "demo_crop", "hrnet_demo", "hrnet_demo_crop"]  # both families per set
    ensemble = "ensemble (mean)"  # the demo's fusion method
    out = tmp_path / "outputs" / "notebooks" / "02_results"
    splits = {  # split: (ensemble predictions written by the demo, truth)
        "val": (demo / "ensemble" / "predictions_val.csv", load_train_df(data)),
        "test": (submission, read_keypoint_csv(data / "test_labels.csv")),
    }
    for split, (pred_csv, truth_df) in splits.items():
        pred_df = read_keypoint_csv(pred_csv)
        pred = keypoints_array(pred_df)
        truth = truth_for(pred_df["image"].tolist(), pred_csv, truth_df)
        assert float(printed[split]) == pytest.approx(metrics.rmse(pred, truth), rel=1e-12), split

        per_kp = pd.read_csv(out / f"{split}_per_keypoint.csv", index_col="keypoint")
        assert per_kp.index.tolist() == list(KEYPOINT_NAMES)
        assert per_kp.columns.tolist() == [*runs, ensemble]
        expected = metrics.per_keypoint_rmse(pred, truth)
        assert per_kp[ensemble].tolist() == pytest.approx([expected[n] for n in KEYPOINT_NAMES])

        flip = pd.read_csv(out / f"{split}_flip_tta.csv", index_col="model")
        assert flip.index.tolist() == [*runs, ensemble]
        assert flip.loc[ensemble, "flip TTA"] == pytest.approx(float(printed[split]))
        assert flip["no flip"].notna().all()  # the demo predicts with and without flip TTA
        assert flip["gain (px)"].tolist() == pytest.approx((flip["no flip"] - flip["flip TTA"]).tolist())

        per_image = pd.read_csv(out / f"{split}_per_image.csv", index_col="image")
        assert sorted(per_image.index) == sorted(pred_df["image"])
        assert per_image[ensemble].is_monotonic_decreasing
        by_name = dict(zip(pred_df["image"], metrics.per_image_rmse(pred, truth)))
        assert per_image[ensemble].tolist() == pytest.approx([by_name[i] for i in per_image.index])
    # per split: keypoint bars, flip TTA bars, per-image distribution, worst-image overlays
    assert images_in(nb) >= 8


@pytest.mark.parametrize("name", ["01_data_exploration.ipynb", "02_results.ipynb"])
def test_notebook_imports_the_kit(name):
    source = "\n".join(c.source for c in nbformat.read(REPO / "notebooks" / name, 4).cells)
    assert "from motion_keypoints" in source
