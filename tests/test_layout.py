"""The package's shape: no import cycle, no module over 600 lines, thin scripts, io/ without
detectron2, the packaged augmentation config in sync, and the one CLI error wrapper."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "code" / "motion_keypoints"
#: Rooms other engineers own (checked by their own tests).
FOREIGN = ("models/heatmap/", "motion/")
MAX_LINES = 600


def _modules():
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if any(rel.startswith(f) for f in FOREIGN):
            continue
        parts = ["motion_keypoints", *path.relative_to(PKG).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name, path):
    """Package modules imported at module level (not inside functions) by ``name``."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports do not run
            continue
        for sub in ast.walk(node):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                break
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names if a.name.startswith("motion_keypoints")}
            elif isinstance(sub, ast.ImportFrom):
                if sub.level:
                    base = package.split(".")
                    base = base[: len(base) - sub.level + 1]
                    mod = ".".join(base + ([sub.module] if sub.module else []))
                else:
                    mod = sub.module or ""
                if mod.startswith("motion_keypoints"):
                    found.add(mod)
                    found |= {f"{mod}.{a.name}" for a in sub.names}
    return found


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {m: {i for i in _imports(m, p) if i in modules and i != m} for m, p in modules.items()}
    # a module importing a package also runs the package's __init__: parents are edges too
    for m in modules:
        parts = m.split(".")
        for k in range(2, len(parts)):
            parent = ".".join(parts[:k])
            if parent in graph and parent != m:
                graph[m].add(parent)
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_every_module_imports_in_a_fresh_interpreter():
    names = [m for m in _modules() if m != "motion_keypoints"]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_no_library_module_over_600_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (one job each): {long}"


def test_io_never_imports_detectron2_or_torch():
    for path in (PKG / "io").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad = [n for n in names if n.split(".")[0] in ("detectron2", "torch")]
            assert not bad, f"{path.name} imports {bad}"


def test_package_import_is_cheap_and_loads_no_detectron2():
    code = ("import sys, motion_keypoints, motion_keypoints.io.predictions, "
            "motion_keypoints.ensemble.driver, motion_keypoints.cli.ensemble\n"
            "bad = [m for m in ('detectron2', 'torch') if m in sys.modules]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_command_scripts_are_thin_shims():
    scripts = sorted((REPO / "code").glob("*.py"))
    assert {p.stem for p in scripts} >= {"train", "predict", "ensemble", "evaluate", "check_data",
                                         "check_submission", "augmentation", "make_synthetic", "demo"}
    for p in scripts:
        if p.stem in ("smooth", "predict_video"):  # another engineer's commands
            continue
        code = [ln for ln in p.read_text().splitlines() if ln.strip()]
        assert len(code) <= 4, f"{p.name} is not a shim"
        assert f"from motion_keypoints.cli.{p.stem} import main" in code


def test_packaged_augmentation_config_is_the_user_facing_one():
    packaged = PKG / "augment" / "augmentation.yaml"
    assert packaged.read_text() == (REPO / "configs" / "augmentation.yaml").read_text(), (
        "copy configs/augmentation.yaml to code/motion_keypoints/augment/augmentation.yaml")


def test_default_augmentation_config_works_outside_the_checkout(tmp_path, monkeypatch):
    from motion_keypoints.augment.config import default_config_path, load_augmentation_config

    monkeypatch.chdir(tmp_path)  # no configs/ here: the packaged copy is used
    path = default_config_path()
    assert path.is_file() and "motion_keypoints" in str(path)
    assert "demo" in load_augmentation_config().sets
    monkeypatch.chdir(REPO)
    assert default_config_path() == Path("configs") / "augmentation.yaml"


def test_unused_tiny_cpu_demo_config_is_gone():
    assert not (REPO / "configs" / "tiny-cpu-demo.yaml").exists()


# ----------------------------------------------------------------------------- the CLI wrapper


def test_cli_maps_user_errors_to_one_line_and_exit_1(tmp_path, capsys):
    from motion_keypoints.cli.evaluate import main

    assert main(["--pred", str(tmp_path / "nope.csv"), "--truth", str(tmp_path / "t.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.csv" in err and "Traceback" not in err


def test_cli_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    from motion_keypoints.cli.evaluate import main

    args = ["--pred", str(tmp_path / "nope.csv"), "--truth", str(tmp_path / "t.csv")]
    assert main([*args, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("MOTION_KEYPOINTS_DEBUG", "1")
    assert main(args) == 1
    assert "Traceback" in capsys.readouterr().err


def test_cli_usage_errors_exit_2(capsys):
    from motion_keypoints.cli.ensemble import main

    with pytest.raises(SystemExit) as exc:
        main(["--method", "vote"])
    assert exc.value.code == 2


def test_cli_does_not_hide_programming_errors():
    from motion_keypoints.cli._run import run_command

    def broken(argv):
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        run_command(broken, [])


def test_every_package_folder_has_an_init_so_setup_finds_it():
    for folder in [PKG, *(p for p in PKG.rglob("*") if p.is_dir())]:
        rel = folder.relative_to(PKG).as_posix() + "/"
        if "__pycache__" in rel or any(rel.startswith(f) for f in FOREIGN):
            continue
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), f"{folder} has no __init__.py"
