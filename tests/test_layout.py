"""The package's architecture as tests: the library never reaches into the harness or torch."""

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

import jaxreg

LIBRARY = Path(jaxreg.__file__).parent
# Sub-packages that are not the library: the harness and the PyTorch side.
NOT_LIBRARY = ("lab", "torch_ref")


def _library_modules() -> list[Path]:
    return [p for p in LIBRARY.rglob("*.py") if p.relative_to(LIBRARY).parts[0] not in NOT_LIBRARY]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_library_modules_never_import_the_harness_or_torch():
    assert len(_library_modules()) >= 10
    offenders = {}
    for path in _library_modules():
        bad = {
            name
            for name in _imported_modules(path)
            if name.startswith(("jaxreg.lab", "jaxreg.torch_ref", "torch"))
        }
        if bad:
            offenders[str(path.relative_to(LIBRARY))] = sorted(bad)
    assert not offenders, f"library modules import the harness or torch: {offenders}"


def test_import_jaxreg_loads_neither_harness_nor_torch():
    code = (
        "import sys, jaxreg; "
        "print(sorted(m for m in sys.modules if m.startswith(('jaxreg.lab', 'torch'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out


# The public modules: façades over jaxreg/_src (optax's layout).
PUBLIC_MODULES = (
    "alpha",
    "constraints",
    "convert",
    "dropout",
    "init",
    "keep_masks",
    "masks",
    "models",
    "nn",
    "nnx",
    "noise",
    "numpy_ref",
    "optim",
    "penalties",
    "prox",
    "spatial",
    "transforms",
    "vgg",
)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_is_a_facade_never_shadowed(name):
    # `import jaxreg.<name> as m` reads the package attribute: a function of the same name bound
    # there would shadow the module (jaxreg.dropout once did).
    module = importlib.import_module(f"jaxreg.{name}")
    assert getattr(jaxreg, name, module) is module
    assert isinstance(module, types.ModuleType)
    exported = module.__all__
    assert exported and len(set(exported)) == len(exported)
    for public in exported:
        value = getattr(module, public)
        assert not public.startswith("_")
        where = getattr(value, "__module__", None)
        if where is not None and where.startswith("jaxreg"):
            # Defined in the implementation, re-exported here.
            assert where.startswith("jaxreg._src."), (name, public, where)
    # A façade defines nothing but the re-exports (dropout adds only its callable module class).
    source = Path(module.__file__).read_text()
    tree = ast.parse(source)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert defined <= {"_CallableModule"}, (name, defined)


def test_no_private_name_imported_across_modules():
    # Private helpers shared by several implementation modules live in jaxreg/_src/_toolkit.py.
    offenders = []
    for path in _library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxreg"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and node.module != "jaxreg._src._toolkit":
                    offenders.append((str(path.relative_to(LIBRARY)), node.module, private))
    assert not offenders, offenders
