"""The house's layers: one namespace, imports that point one way, a core without Beam or JAX."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Each layer's folder and the layers (and heavy libraries) its modules may import.
LAYERS = {
    "albertprep.core": ROOT / "albertprep" / "core",
    "albertprep.pipelines": ROOT / "pipelines",
    "albertprep.loaders": ROOT / "loaders",
    "albertprep.model": ROOT / "model",
    "albertprep.tools": ROOT / "albertprep" / "tools",
}
MAY_IMPORT = {
    "albertprep.core": {"albertprep.core"},
    "albertprep.pipelines": {"albertprep.core", "albertprep.pipelines"},
    "albertprep.loaders": {"albertprep.core", "albertprep.loaders"},
    "albertprep.model": {"albertprep.core", "albertprep.loaders", "albertprep.model"},
    "albertprep.tools": {"albertprep.core", "albertprep.pipelines", "albertprep.loaders", "albertprep.tools"},
}
BEAM = ("apache_beam",)
JAX = ("jax", "jaxlib", "flax", "optax", "orbax", "grain")
# Libraries a layer must not import at module level (a function may, for a rare path).
MUST_NOT_LOAD = {
    "albertprep.core": BEAM + JAX,
    "albertprep.pipelines": JAX,
    "albertprep.loaders": BEAM,
    "albertprep.model": BEAM,
}


def _imports(path: pathlib.Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every import of a file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, id(node) in top))
    return found


def _layer_of(module: str) -> str | None:
    if module in ("albertprep", "albertprep.cli"):
        return "albertprep.cli"
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_below_it(layer):
    files = sorted(LAYERS[layer].glob("*.py"))
    assert files, layer
    wrong = []
    for path in files:
        for module, at_top in _imports(path):
            if module.split(".")[0] in ("pipelines", "loaders", "model"):
                wrong.append(f"{path.name}: {module} (outside the albertprep namespace)")
            target = _layer_of(module)
            if target is not None and target not in MAY_IMPORT[layer]:
                wrong.append(f"{path.name}: {module}")
            if at_top and module.split(".")[0] in MUST_NOT_LOAD.get(layer, ()):
                wrong.append(f"{path.name}: {module} at module level")
    assert wrong == []


def test_the_loader_and_the_model_run_without_beam():
    """Importing the loader, the training loop and the core loads no Beam;
    the loader alone loads no JAX model code either."""
    probe = ("import sys; import albertprep.loaders.loader, albertprep.core.records, albertprep.core.tokenizer; "
             "assert 'apache_beam' not in sys.modules; assert 'flax' not in sys.modules; "
             "import albertprep.model.pretrain; assert 'apache_beam' not in sys.modules; "
             "assert not [m for m in sys.modules if m.split('.')[:2] == ['albertprep', 'pipelines']]; "
             "print('ok')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_wheel_installs_one_package_holding_the_three_stages(tmp_path):
    """What `pip install .` puts in site-packages: `albertprep` and its dist-info,
    with the stage folders inside it, and the console script pointing there."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("albertprep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"albertprep", wheel.name.split("-py")[0] + ".dist-info"}
    for module in ("albertprep/pipelines/prepare.py", "albertprep/loaders/loader.py", "albertprep/model/albert.py",
                   "albertprep/core/records.py", "albertprep/cli.py"):
        assert module in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "albertprep = albertprep.launch:main" in entry_points


def test_the_source_distribution_beam_ships_holds_the_stage_folders(tmp_path):
    """Beam's --setup_file builds an sdist of setup.py's directory for its workers."""
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    (archive,) = tmp_path.glob("albertprep-*.tar.gz")
    names = {name.split("/", 1)[1] for name in tarfile.open(archive).getnames() if "/" in name}
    for module in ("setup.py", "pipelines/prepare.py", "loaders/loader.py", "model/albert.py",
                   "albertprep/core/records.py", "albertprep/cli.py"):
        assert module in names, module
