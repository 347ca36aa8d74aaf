"""The size of the product's shape: lines, modules, largest module, untyped dicts, repeats.

    python benchmarks/shape_figures.py [TREE]      # default: this checkout
    git worktree add /tmp/old <rev> && python benchmarks/shape_figures.py /tmp/old

harness/fixtures/ (the embedded model, its build scripts) is left out. Repeated code is
counted by the `duplicates` command where it is on PATH (pairs of places sharing six or
more lines); elsewhere that figure is reported as unavailable.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tokenize
from pathlib import Path


def product_files(tree: Path) -> list[Path]:
    return sorted(p for p in (tree / "harness").rglob("*.py") if "fixtures" not in p.parts)


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def code_lines(path: Path) -> int:
    """Lines holding code: blank lines, comments and docstrings (bare strings) left out."""
    found: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}  # fmt: skip
    starts = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    prev: int | None = None
    with path.open(encoding="utf-8") as fh:
        for tok in tokenize.generate_tokens(fh.readline):
            if tok.type in skip:
                prev = tok.type if tok.type in starts else prev
                continue
            if tok.type != tokenize.STRING or (prev is not None and prev not in starts):
                found.update(range(tok.start[0], tok.end[0] + 1))
            prev = tok.type
    return len(found)


def duplicate_pairs(folder: Path) -> str:
    exe = shutil.which("duplicates")
    if exe is None:
        return "unavailable (no duplicates command)"
    out = subprocess.run(
        [exe, "--repo", str(folder), "--seconds", "60"], capture_output=True, text=True, check=False
    ).stdout
    match = re.match(r"(\d+) pairs", out) or re.match(r"no duplicates", out)
    return (match.group(1) if match and match.groups() else "0") if match else out[:80]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", type=Path, default=Path(__file__).parents[1])
    tree = parser.parse_args().tree.resolve()
    files = product_files(tree)
    sizes = {str(p.relative_to(tree)): lines(p) for p in files}
    largest = max(sizes, key=sizes.__getitem__)
    untyped = sum(p.read_text(encoding="utf-8").count("dict[str, Any]") for p in files)
    tests = sum(lines(p) for p in (tree / "tests").rglob("*.py"))
    print(f"tree:                 {tree}")
    print(f"harness lines:        {sum(sizes.values())} (fixtures left out)")
    print(f"code lines:           {sum(map(code_lines, files))} (no blanks, comments, docstrings)")
    print(f"modules:              {len(files)}")
    print(f"largest module:       {largest} ({sizes[largest]} lines)")
    over = sorted(p for p, n in sizes.items() if n > 400)
    print(f"modules over 400:     {len(over)} {over}")
    print(f"dict[str, Any]:       {untyped}")
    print(f"repeated-code pairs:  {duplicate_pairs(tree / 'harness')} in harness/")
    print(f"test lines:           {tests}")


if __name__ == "__main__":
    main()
