"""The package's shape, checked by tools: what target/ may import, no cycles, module sizes.

The layer contracts live in pyproject.toml ([tool.importlinter]); this runs them too, so the
tests fail where `nox -s lint` would.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "harness" / "target"
ALLOWED_IN_TARGET = {"torch", "transformers", "safetensors", "tokenizers", "accelerate"}
MAX_LINES = 400
# The worker measures one run as one linear sequence; its reason is at its top.
LONG_ON_PURPOSE = {"harness/target/worker.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _type_checking_only(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for sub in node.body:
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    names.add(sub.module.split(".")[0])
                elif isinstance(sub, ast.Import):
                    names.update(a.name.split(".")[0] for a in sub.names)
    return names


@pytest.mark.parametrize("path", sorted(TARGET.glob("*.py")), ids=lambda p: p.name)
def test_target_imports_only_the_stdlib_and_the_stack(path: Path) -> None:
    # Parsing with feature_version=(3, 9) also rejects syntax Python 3.9 cannot read.
    runtime = _imports(path) - _type_checking_only(path)
    outside = {m for m in runtime if m not in sys.stdlib_module_names} - ALLOWED_IN_TARGET
    assert outside == set(), f"{path.name} imports {sorted(outside)} at run time"


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("harness", exclude_type_checking_imports=True, cache_dir=None)
    modules = sorted(graph.modules)
    index = {m: i for i, m in enumerate(modules)}
    edges = [
        (index[m], index[n]) for m in modules for n in graph.find_modules_directly_imported_by(m)
    ]
    rows, cols = zip(*edges, strict=True) if edges else ((), ())
    adjacency = csr_matrix(([1] * len(edges), (rows, cols)), shape=(len(modules),) * 2)
    _, label = connected_components(adjacency, directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for module, part in zip(modules, label, strict=True):
        groups.setdefault(int(part), []).append(module)
    assert [g for g in groups.values() if len(g) > 1] == []


def test_modules_are_small() -> None:
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
        for p in (REPO / "harness").rglob("*.py")
        if "fixtures" not in p.parts
    }
    big = {p: n for p, n in sizes.items() if n > MAX_LINES and p not in LONG_ON_PURPOSE}
    assert big == {}


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
