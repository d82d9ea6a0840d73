"""generated/ holds the modules for the bundled example specs; they must match a fresh render."""

from pathlib import Path

import pytest

from lstmgen.cli import load_spec
from lstmgen.lower.plan import VariantKey
from lstmgen.render import render

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


def expected_modules() -> dict:
    modules = {}
    for path in EXAMPLES:
        key = VariantKey.from_spec(load_spec(str(path)), "cpu")
        modules[f"{key.module_name}.py"] = key
    return modules


def test_examples_exist():
    assert len(EXAMPLES) >= 2


def test_generated_holds_exactly_the_example_modules():
    present = {p.name for p in (ROOT / "generated").glob("*.py")}
    assert present == set(expected_modules()), "run `make generated` after changing templates or examples"


@pytest.mark.parametrize("name", sorted(expected_modules()))
def test_golden_file_is_byte_identical(name):
    key = expected_modules()[name]
    on_disk = (ROOT / "generated" / name).read_text(encoding="utf-8")
    assert render(key) == on_disk, f"generated/{name} differs from a fresh render: run `make generated`"
