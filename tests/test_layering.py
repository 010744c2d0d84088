"""No module of glsplat imports one above it.

The layers, bottom to top: low-level utilities; the GL context; ``rasterize``; ``interpolate``
and the contour edges (``silhouette``); shading and the splat; ``render`` (and the nvdiffrast-style API beside it); the applications
(fitting, the viewer, the CLI, the package's own namespace). A module may import its own layer
and those below. Every import counts, also those inside functions (a lazy import upwards is
still a cycle in the design). The imports are read from the source with ``ast``, not run.
"""
import ast
from pathlib import Path

import glsplat

PACKAGE = Path(glsplat.__file__).resolve().parent

LAYERS = [
    {"kernels", "checks", "images", "memory", "transforms", "camera", "mesh"},
    {"context", "cuda_gl"},
    {"raster"},
    {"interpolate", "silhouette"},
    {"shading", "splat"},
    {"render", "nvdiffrast"},
    {"fitting", "viewer", "cli", "__init__", "__main__"},
]
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = ["glsplat", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The part of glsplat a module belongs to: its first name under ``glsplat`` (a module or a
    subpackage); the package's own ``__init__`` for ``glsplat`` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_module(name: str) -> bool:
    relative = PACKAGE.joinpath(*name.split(".")[1:])
    return relative.with_suffix(".py").is_file() or (relative / "__init__.py").is_file()


def imported(path: Path) -> set[str]:
    """The glsplat modules ``path`` imports (``from . import x`` counts as module ``x`` when it is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return {module for module in found if module == "glsplat" or module.startswith("glsplat.")}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_part_of_glsplat_has_a_layer():
    units = {unit(module_name(p)) for p in modules()}
    assert units <= set(LEVEL), f"place these in LAYERS: {sorted(units - set(LEVEL))}"
    assert {"context", "raster", "interpolate", "splat", "render", "viewer"} <= units  # the parser sees the tree


def test_no_module_imports_one_above_it():
    violations = []
    for path in modules():
        importer = module_name(path)
        for module in imported(path):
            if LEVEL[unit(module)] > LEVEL[unit(importer)]:
                violations.append(f"{importer} (layer {LEVEL[unit(importer)]}) imports {module} "
                                  f"(layer {LEVEL[unit(module)]})")
    assert not violations, "\n".join(violations)


def test_the_parser_resolves_relative_imports():
    """Known edges, so that the test above cannot pass by seeing no imports."""
    assert {"glsplat.checks", "glsplat.context", "glsplat.cuda_gl"} <= imported(PACKAGE / "raster.py")
    assert "glsplat.kernels" in imported(PACKAGE / "viewer" / "app.py")  # from .. import kernels
    assert "glsplat.viewer.problem" in imported(PACKAGE / "viewer" / "app.py")
    assert "glsplat.render" in imported(PACKAGE / "__init__.py")
    assert "glsplat" in imported(PACKAGE / "cli" / "render.py")  # import glsplat, inside a function
