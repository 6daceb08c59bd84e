"""The README's "Compare your own model" example, run verbatim (and docs/compare_example.py)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- compare-example:start -->", "<!-- compare-example:end -->"


def _example() -> tuple[str, Path]:
    # The README carries the section once the coordinator has pasted docs/compare.md into it.
    for path in (ROOT / "README.md", ROOT / "docs" / "compare.md"):
        text = path.read_text() if path.is_file() else ""
        if START in text and END in text:
            block = text.split(START, 1)[1].split(END, 1)[0]
            (code,) = re.findall(r"```python\n(.*?)```", block, flags=re.S)
            return code, path
    raise AssertionError(f"no {START} ... {END} block in README.md or docs/compare.md")


def test_the_spec_file_is_the_example_without_its_last_lines():
    code, _ = _example()
    spec_file = (ROOT / "docs" / "compare_example.py").read_text()
    body = spec_file.split('"""', 2)[2].lstrip("\n")
    assert code.startswith(body), "docs/compare_example.py and the README example differ"


def test_the_readme_example_runs_verbatim(capsys):
    from jaxreg.lab.data import load_fashion_mnist

    try:
        load_fashion_mnist(train_size=1, test_size=1)
    except FileNotFoundError as err:
        pytest.skip(f"Fashion-MNIST is not installed: {err}")
    code, path = _example()
    namespace = {"__name__": "compare_example_readme"}
    exec(compile(code, str(path), "exec"), namespace)  # the asserts are the example's own
    printed = capsys.readouterr().out
    assert "float64 gate PASSED" in printed and "compare: PASSED" in printed
    assert printed.rstrip().splitlines()[-1] in ("consistent", "different")
