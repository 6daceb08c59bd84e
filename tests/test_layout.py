"""The package's architecture as tests: the library never reaches into the harness or torch."""

import ast
import subprocess
import sys
from pathlib import Path

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
