"""The notebooks run top to bottom, headless (nbclient), on synthetic data they make themselves.

The kernel is this interpreter (a kernelspec written to a temporary folder): nothing is
registered globally, and the kit under test is the one these tests import.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

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


@pytest.mark.parametrize("name", ["01_data_exploration.ipynb"])
def test_notebook_imports_the_kit(name):
    source = "\n".join(c.source for c in nbformat.read(REPO / "notebooks" / name, 4).cells)
    assert "from motion_keypoints" in source
