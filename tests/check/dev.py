"""The maintainer's loop: `python -m tests.check.dev check` proves the course holds together, `new` adds a step.

    python -m tests.check.dev check [--fast] [--static] [NN ...]
    python -m tests.check.dev new NN "title"

`check` runs the checker on every skeleton (it must import, then fail) and every solution (it must pass),
holds every skeleton to its solution (`blocks.literal_problems`), and holds the course's files to the records
of tests/check/steps.py: each step's checklist, hints, zoo and book page (in each language, with its frame),
the book's contents, the Makefile's STEPS, pixi.toml's sNN tasks, the README's step table, and the workflows
that name steps. It prints one line per problem on stdout (where, and what is wrong), and what it did on
stderr; it exits 1 on a problem, 0 without, 2 for a wrong command.

`new` scaffolds a step at the end of the course, small but real: a function with one TODO block, its
solution, a checklist judging it against a float64 oracle (so the skeleton fails and the solution passes),
hints, a zoo case of each kind, its page in the book, the record and the targets; then checks it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.check import REPO_ROOT
from tests.check.blocks import blocks, file_pairs, literal_problems
from tests.check.cli import USAGE_ERROR, parse_check_arguments
from tests.check.engine import run_checklist
from tests.check.steps import STEPS, Step

# What `--fast` leaves out: the tiers whose runs take minutes (MAX and Mojo compiles, PyTorch).
SLOW_TIERS = ("max", "mojo", "slow")
POINTS = 100  # a new step's Classroom 50 points, until the maintainer reweighs the course


# -- where a step's parts live (a part that moves is a one-line change here) ------------------------
def step_package(number: str) -> str:
    """The step's checks in one place: its checklist, and the judging and probes only it uses."""
    return f"tests/check/step_{number}"


def checklist_file(number: str) -> str:
    """The step's checklist, which `tests.check.engine.load_checklist` imports."""
    return f"{step_package(number)}/checklist.py"


def hints_file(number: str) -> str:
    return f"tests/check/hints/step_{number}.md"


def zoo_folder(number: str) -> str:
    return f"tests/zoo/step_{number}"


def page_file(number: str, language: str = "") -> str:
    """The step's page in the book: docs/src/step_NN.md, or its translation in docs/src/LANGUAGE/."""
    return "/".join(["docs/src", *([language] if language else []), f"step_{number}.md"])


@dataclass(frozen=True)
class Frame:
    """A step page's fixed lines in one language of the book (tests/test_book.py reads them the same way)."""

    language: str  # the folder under docs/src ("" for English)
    edit: str
    check: str
    reference: str
    next: str  # the word that opens the page's last paragraph, the link to what follows
    step: str  # "Step" in the book's contents
    step_in_text: str  # "step" in a sentence ("Next: [step 02](step_02.md)")


FRAMES = (
    Frame("", "Edit", "Check", "Reference", "Next", "Step", "step"),
    Frame("vi", "Sửa", "Kiểm tra", "Lời giải tham khảo", "Tiếp theo", "Bước", "Bước"),
)
SUMMARY = "docs/src/SUMMARY.md"
README_TABLE = "| step | you build | files |"


# -- check ----------------------------------------------------------------------------------------
def listed_problems(where: str, listed: list[str], expected: list[str], what: str) -> list[str]:
    """`where` lists `listed` (e.g. make targets), one per record in the records' order: what is off, one line each."""
    missing = [item for item in expected if item not in listed]
    extra = [item for item in listed if item not in expected]
    problems = [f"{where}: no {item} in {what}, though tests/check/steps.py has that step" for item in missing]
    problems += [f"{where}: {item} in {what}, though tests/check/steps.py has no such step" for item in extra]
    if not problems and listed != expected:
        problems.append(f"{where}: {what} lists {' '.join(listed)}; the records' order is {' '.join(expected)}")
    return problems


def file_problems(root: Path, records) -> list[str]:
    """Each record's files exist: the learner's and the solution's, the checklist, the hints (with levels), the zoo;
    and no step's file is there without a record."""
    problems = []
    for record in records:
        parts = {
            record.skeleton: "the file the checker imports",
            record.learner: "the learner's file",
            record.reference: "the solution's file the checker imports",
            record.solution: "the solution",
            checklist_file(record.number): "its checklist",
            zoo_folder(record.number): "its zoo",
        }
        for path, what in parts.items():
            if not (root / path).exists():
                problems.append(f"{path}: missing ({what}: step {record.number}'s record names it)")
        hints = root / hints_file(record.number)
        if not hints.is_file():
            problems.append(f"{hints_file(record.number)}: missing (the hints of step {record.number})")
        elif not re.search(r"^## \S", hints.read_text(encoding="utf-8"), re.M):
            problems.append(f"{hints_file(record.number)}: no level (a hint level is a `## ` section)")
    numbers = {record.number for record in records}
    patterns = [
        checklist_file("[0-9][0-9]"),
        hints_file("[0-9][0-9]"),
        zoo_folder("[0-9][0-9]"),
        page_file("[0-9][0-9]"),
    ]
    for pattern in [*patterns, "steps/step_[0-9][0-9]*", "solutions/solution_[0-9][0-9]*"]:
        for path in sorted(root.glob(pattern)):
            number = re.findall(r"_(\d\d)", path.relative_to(root).as_posix())[-1]
            if number not in numbers:
                problems.append(
                    f"{path.relative_to(root).as_posix()}: step {number} has no record in tests/check/steps.py"
                )
    return problems


def skeleton_problems(root: Path, records) -> list[str]:
    """Every skeleton is its solution minus its TODO blocks, literally, and has at least one."""
    problems = []
    for record in records:
        learner, solution = root / record.learner, root / record.solution
        if not (learner.exists() and solution.exists()):
            continue  # file_problems says so
        for skeleton, reference in file_pairs(learner, solution):
            if not skeleton.is_file():
                relative = skeleton.relative_to(root).as_posix()
                problems.append(f"{relative}: missing (its solution {reference.relative_to(root).as_posix()} is there)")
                continue
            problems += literal_problems(skeleton, reference, root)
        if not any(blocks(path.read_text(encoding="utf-8")) for path in record.learner_files(root) if path.is_file()):
            problems.append(f"{record.learner}: no `# TODO-BLOCK: name` block (nothing for the learner to write)")
    return problems


def page_problems(root: Path, records) -> list[str]:
    """Every step has a page in each language with the frame: Edit / Check / Reference, its checklist, a Next link
    (to the next step's page, but for the last step)."""
    problems = []
    for frame in FRAMES:
        for index, record in enumerate(records):
            where = page_file(record.number, frame.language)
            page = root / where
            if not page.is_file():
                problems.append(f"{where}: missing (step {record.number}'s page)")
                continue
            problems += [f"{where}: {problem}" for problem in frame_problems(root, page, record, frame)]
            text = page.read_text(encoding="utf-8")
            last = " ".join(re.split(r"\n\s*\n", text.strip())[-1].split())
            link = re.match(rf"{frame.next}: .*?\[[^\]]+\]\(([^)#\s]+)(#[^)]*)?\)", last)
            if not link:
                problems.append(f"{where}: does not end with a paragraph '{frame.next}: [...](page.md)'")
                continue
            target = (page.parent / link.group(1)).resolve()
            following = records[index + 1] if index + 1 < len(records) else None
            if not target.is_file():
                problems.append(f"{where}: its {frame.next} link {link.group(1)} leads to no page")
            elif following and target != (root / page_file(following.number, frame.language)).resolve():
                problems.append(f"{where}: its {frame.next} link leads to {link.group(1)}, not step {following.number}")
    return problems


def frame_problems(root: Path, page: Path, record: Step, frame: Frame) -> list[str]:
    text = page.read_text(encoding="utf-8")
    intro = text.split("\n## ", 1)[0]  # before the first section
    fields = dict(re.findall(r"^- ([^:\n]+): (.+)$", intro, re.M))
    problems = [
        f"no line '- {label}: ...' before its first section (the frame: {frame.edit} / {frame.check} / "
        f"{frame.reference})"
        for label in (frame.edit, frame.check, frame.reference)
        if label not in fields
    ]
    if frame.edit in fields:
        todo = {
            path.relative_to(root).as_posix()
            for path in record.learner_files(root)
            if path.is_file() and blocks(path.read_text(encoding="utf-8"))
        }
        named = set(re.findall(r"`([^`]+)`", fields[frame.edit]))
        if named != todo:
            problems.append(
                f"its {frame.edit} line names {sorted(named)}; the files with TODO blocks are {sorted(todo)}"
            )
    if frame.check in fields and f"`make s{record.number}`" not in fields[frame.check]:
        problems.append(f"its {frame.check} line does not say `make s{record.number}`")
    if frame.reference in fields:
        named = re.findall(r"`([^`]+)`", fields[frame.reference])
        if not named or (root / named[0]).resolve() != (root / record.solution).resolve():
            problems.append(f"its {frame.reference} line does not name {record.solution}")
    directives = re.findall(r"\{\{#checklist\s+(\d\d)\s*\}\}", text)
    if directives != [record.number]:
        found = ", ".join(directives) or "none"
        problems.append(f"has no {{{{#checklist {record.number}}}}} of its own (found: {found})")
    return problems


def summary_problems(root: Path, records) -> list[str]:
    """SUMMARY.md lists every step's page, in each language, in the records' order."""
    text = (root / SUMMARY).read_text(encoding="utf-8")
    problems = []
    for frame in FRAMES:
        prefix = f"{frame.language}/" if frame.language else ""
        listed = re.findall(rf"\]\({re.escape(prefix)}(step_\d\d)\.md\)", text)
        language = f" ({frame.language})" if frame.language else ""
        expected = [f"step_{record.number}" for record in records]
        problems += listed_problems(SUMMARY, listed, expected, f"the book's contents{language}")
    return problems


def makefile_problems(root: Path, records) -> list[str]:
    text = (root / "Makefile").read_text(encoding="utf-8")
    line = re.search(r"^STEPS\s*:?=(.*)$", text, re.M)
    if not line:
        return ["Makefile: no `STEPS := s01 ...` line (the targets that check each step)"]
    problems = listed_problems("Makefile", line.group(1).split(), [f"s{r.number}" for r in records], "STEPS")
    if not re.search(r"^\$\(STEPS\):.*\n\t.*-m tests\.check \$\(patsubst s%,%,\$@\)", text, re.M):
        problems.append("Makefile: no `$(STEPS):` rule running `python -m tests.check NN` for each of STEPS")
    return problems


def pixi_problems(root: Path, records) -> list[str]:
    tasks = dict(re.findall(r'^(s\d\d)\s*=\s*"([^"]*)"', (root / "pixi.toml").read_text(encoding="utf-8"), re.M))
    problems = listed_problems("pixi.toml", list(tasks), [f"s{r.number}" for r in records], "the tasks")
    problems += [
        f'pixi.toml: task s{r.number} runs "{tasks[f"s{r.number}"]}", not "python -m tests.check {r.number}"'
        for r in records
        if tasks.get(f"s{r.number}", f"python -m tests.check {r.number}") != f"python -m tests.check {r.number}"
    ]
    return problems


def step_table(readme: str) -> tuple[list[str], int]:
    """(README.md's lines, the index of the line after its step table's last row); ValueError without the table."""
    lines = readme.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if line.strip() == README_TABLE]
    if not headers:
        raise ValueError(f"README.md: no step table (a table with the header '{README_TABLE}')")
    end = headers[0] + 1
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines, end


def readme_problems(root: Path, records) -> list[str]:
    """README.md's step table: a row per step, in order, naming the learner's file (or `…/` and its name)."""
    try:
        lines, end = step_table((root / "README.md").read_text(encoding="utf-8"))
    except ValueError as missing:
        return [str(missing)]
    rows = {}
    for row in lines[:end]:
        number = re.match(r"\|\s*(\d\d)\s*\|", row)
        if number:
            rows[number.group(1)] = row
    problems = listed_problems(
        "README.md", [f"step {n}" for n in rows], [f"step {r.number}" for r in records], "the step table"
    )
    for record in records:
        row = rows.get(record.number, "")
        short = f"`…/{Path(record.learner).name}`"
        if row and f"`{record.learner}`" not in row and short not in row:
            problems.append(f"README.md: the step table's row {record.number} does not name `{record.learner}`")
    return problems


def workflow_problems(root: Path, records) -> tuple[list[str], list[str]]:
    """A workflow that names steps (`make sNN`, `pixi run sNN`, `tests.check NN`, a `step: [...]` matrix) names
    them all; (problems, notes on the workflows that name none)."""
    problems, notes = [], []
    for workflow in sorted((root / ".github" / "workflows").glob("*.y*ml")):
        text = workflow.read_text(encoding="utf-8")
        where = workflow.relative_to(root).as_posix()
        named = re.findall(r"(?:\bmake\s+s|\bpixi\s+run\s+s|\btests\.check\s+)(\d\d)\b", text)
        for matrix in re.findall(r"\bsteps?:\s*\[([^\]]*)\]", text):
            named += re.findall(r"\b\d\d\b", matrix)
        if named:
            listed = sorted(set(named))
            problems += listed_problems(where, listed, sorted(r.number for r in records), "the steps it runs")
        else:
            how = " (it runs `status --started`: the steps the learner has started)" if "--started" in text else ""
            notes.append(f"{where} names no step{how}: nothing to hold to the records")
    return problems, notes


def course_problems(root: Path = REPO_ROOT, records=STEPS) -> tuple[list[str], list[str]]:
    """(problems, notes) of the course's files against the records: everything `check` does but run the checker."""
    problems = []
    for part in (
        file_problems,
        skeleton_problems,
        page_problems,
        summary_problems,
        makefile_problems,
        pixi_problems,
        readme_problems,
    ):
        try:
            problems += part(root, records)
        except FileNotFoundError as missing:  # a file the part reads (the Makefile, pixi.toml, ...)
            problems.append(f"{Path(missing.filename).relative_to(root).as_posix()}: missing")
    workflows, notes = workflow_problems(root, records)
    return problems + workflows, notes


def run_problems(record: Step) -> tuple[list[str], str]:
    """The checker on the step's skeleton (it imports, then fails) and its solution (it passes): (problems, note)."""
    problems, verdicts = [], []
    for relative, should_pass in ((record.skeleton, False), (record.reference, True)):
        path = REPO_ROOT / relative
        if not path.is_file():
            continue  # file_problems says so
        try:
            checklist, options = parse_check_arguments([record.number, "--file", str(path)])
            report = run_checklist(checklist, path, options, strict=True)
        except Exception as bug:  # the checklist does not import, or (strict) a bug in it raises instead of a ❌
            problems.append(
                f"{checklist_file(record.number)}: raised {type(bug).__name__}: {bug} (checking {relative})"
            )
            continue
        failed = [result for result in report.results if result.status == "failed"]
        if should_pass and failed:
            problems.append(f"{relative}: the solution fails `{failed[0].name}`: {failed[0].message}")
        elif not should_pass and report.results[0].status == "failed":
            problems.append(f"{relative}: the skeleton does not import: {report.results[0].message}")
        elif not should_pass and not failed:
            problems.append(f"{relative}: the skeleton passes every check (no check needs its TODO blocks)")
        judged = len(report.results) - report.count("skipped")
        verdicts.append(
            f"solution passes {judged - len(failed)} of {judged} checks"
            if should_pass
            else f"skeleton fails {len(failed)} of {judged} checks"
        )
    return problems, f"step {record.number}: " + (", ".join(verdicts) or "not checked (see the problems)")


def check(options) -> int:
    problems, notes = course_problems()
    for note in notes:
        print(note, file=sys.stderr)
    chosen = [r for r in STEPS if not options.steps or r.number in options.steps]
    runs = [] if options.static else [r for r in chosen if not (options.fast and r.tier in SLOW_TIERS)]
    for record in runs:
        print(f"checking step {record.number}'s skeleton and solution...", file=sys.stderr, flush=True)
        found, note = run_problems(record)
        problems += found
        print(note, file=sys.stderr)
    for problem in problems:
        print(problem)
    left_out = [r.number for r in chosen if r not in runs]
    why = " (--static)" if options.static else f" (--fast leaves out tiers {', '.join(SLOW_TIERS)})"
    ran = f"checker run on steps {', '.join(r.number for r in runs) or 'none'}" + (
        f"; not on {', '.join(left_out)}{why}" if left_out else ""
    )
    print(f"dev check: {len(problems)} problem(s); {ran}", file=sys.stderr)
    return 1 if problems else 0


# -- new ------------------------------------------------------------------------------------------
# The scaffold is a real, small step (centre each row), so it runs at once: the maintainer replaces its task.
# <NN> is the step's number, <TITLE> its title.
SKELETON = '''"""Step <NN> — <TITLE>.

    y = x - mean(x)      (per row, over the D features)

Check your work:  make s<NN>   (or: pixi run s<NN>)
Read:             docs/src/step_<NN>.md
"""

import numpy as np


def forward(x):
    """Centre each row of `x`: subtract the row's mean from each of its values.

    Args:
        x: (N, D) array.

    Returns:
        y: (N, D) array, each row of which averages to zero.
    """
<BLOCK>
    return y
'''
TODO_BLOCK = """    # TODO-BLOCK: forward
    # TODO: the mean of each row, shape (N, 1), subtracted from each of its values.
    # Hint: np.mean(x, axis=..., keepdims=True) keeps the axis, so it broadcasts against (N, D).
    y = None
    # TODO-BLOCK-END: forward"""
ANCHOR_BLOCK = """    # ANCHOR: forward
    y = x - np.mean(x, axis=1, keepdims=True)
    # ANCHOR_END: forward"""

CHECKLIST = '''"""Step <NN> checklist: <TITLE>.

A new step's scaffold: one check judges the learner's `forward` against `oracle`, written here apart from the
solution. Replace both with the step's own (and the zoo's cases, tests/zoo/step_<NN>/, with its mistakes).
"""

from __future__ import annotations

import numpy as np

from tests.check.kit import Checklist, expect_array, expect_close, random_case

checklist = Checklist(step="<NN>", import_timeout=5, default_timeout=5, preload=("numpy",))

FUNCTION = "forward"


def oracle(x) -> np.ndarray:
    """What `forward` must return, in float64: each row minus its mean."""
    x = np.asarray(x, dtype=np.float64)
    return x - x.sum(axis=1, keepdims=True) / x.shape[1]


@checklist.check("random rows (N=7, D=13) match the float64 oracle")
def random_rows(learner):
    x, _, _ = random_case(1, (7, 13))
    y = expect_array(learner.call(FUNCTION, x), "y", shape=x.shape, dtype=x.dtype)
    return expect_close(y, oracle(x), name="y", dtype=x.dtype)
'''

HINTS = """# Step <NN>: <TITLE>

## The idea
<!-- checks: random rows -->
Each row of `x` is centred on its own: the mean of its D values is subtracted from every one of
them, so that each row of `y` averages to zero. Nothing mixes the rows.

## The shapes
Take the mean over `axis=1` with `keepdims=True`: it is `(N, 1)`, and it broadcasts against `x`,
`(N, D)`, so the subtraction needs no loop over the rows.

## The exact lines
The mean of each row, kept as a column so that it broadcasts, subtracted from the row itself:
```python
y = x - np.mean(x, axis=1, keepdims=True)
```
"""

ZOO_OK = '''"""EXPECT: pass"""

import numpy as np


def forward(x):
    return x - np.add.reduce(x, axis=1, keepdims=True) / x.shape[1]
'''
ZOO_BAD = '''"""EXPECT: random rows :: differs from the float64 oracle"""

import numpy as np


def forward(x):
    return x - np.mean(x)  # one mean for the whole array, not one per row
'''

PAGE = """# Step <NN>: <TITLE>

You write `forward(x) -> y` for a batch `x` of shape `(N, D)`: each row centred on its own, its
mean subtracted from every one of its values.

- Edit: `steps/step_<NN>.py`
- Check: `make s<NN>` (or `pixi run s<NN>`)
- Reference: `solutions/solution_<NN>.py` (revealed at the end of this page)

## Run the checks

```text
make s<NN>            # or: pixi run s<NN>
```

The checker imports your file in a separate process, calls your function and compares with a
float64 oracle written independently of the solution. It runs, in order:

{{#checklist <NN>}}

A row centred with the mean of the whole array instead of its own mean gets
**"differs from the float64 oracle"**, with the largest error and where it is.

## The solution

<details>
<summary>Show the reference (solutions/solution_<NN>.py)</summary>

```python
{{#include ../../solutions/solution_<NN>.py:forward}}
```

</details>

<NEXT>
"""

PAGE_VI = """# Bước <NN>: <TITLE>

Trang này chưa được dịch: xem [trang tiếng Anh](../step_<NN>.md).

- Sửa: `steps/step_<NN>.py`
- Kiểm tra: `make s<NN>` (hoặc `pixi run s<NN>`)
- Lời giải tham khảo: `solutions/solution_<NN>.py`

## Các kiểm tra

`make s<NN>` chạy các kiểm tra sau, theo thứ tự (tên bằng tiếng Anh, đúng như checker in ra):

{{#checklist <NN>}}

<NEXT>
"""


class Refused(Exception):
    """`new` cannot scaffold this step; nothing was written. `code`: the exit status."""

    def __init__(self, message: str, code: int = USAGE_ERROR):
        super().__init__(message)
        self.code = code


def refuse_arguments(number: str, title: str, records) -> None:
    if not re.fullmatch(r"\d\d", number) or number == "00":
        raise Refused(f"expected a two-digit step number such as 07, got {number!r}")
    existing = {record.number: record for record in records}
    if number in existing:
        raise Refused(f"step {number} exists ({existing[number].title!r}, tests/check/steps.py): pick another number")
    last = records[-1].number if records else "00"
    if number < last:
        raise Refused(f"a new step goes after the last one, {last}: pick a number above it, e.g. {int(last) + 1:02d}")
    if not title.strip():
        raise Refused('the title is empty: say what the learner builds, e.g. "RMSNorm in NumPy"')
    odd = sorted({c for c in title if c in '"\\`|[]' or not c.isprintable()})
    if odd:
        raise Refused(
            f"the title holds {' '.join(map(repr, odd))}: a title goes into Python strings, the README's table and "
            "the book's links, and these characters would break one of them"
        )
    if len(title) > 70:
        raise Refused(f"the title is {len(title)} characters long: keep it to 70 (it is a line of the book's contents)")


def fill(template: str, number: str, title: str, **parts: str) -> str:
    text = template.replace("<NN>", number).replace("<TITLE>", title)
    for name, value in parts.items():
        text = text.replace(f"<{name.upper()}>", value)
    return text


def inserted_after_last(text: str, pattern: str, line: str, where: str) -> str:
    """`text` with `line` inserted after the last line matching `pattern`; Refused when none does."""
    matches = list(re.finditer(pattern, text, re.M))
    if not matches:
        raise Refused(f"{where}: no line like {pattern!r} to add the new step after", code=1)
    end = text.index("\n", matches[-1].end()) + 1 if "\n" in text[matches[-1].end() :] else len(text)
    return text[:end] + line + "\n" + text[end:]


def record_source(number: str, title: str) -> str:
    """The new record, as ruff would format it."""
    fields = [
        f'"{number}"',
        f'"{title}"',
        f'"steps/step_{number}.py"',
        f'"solutions/solution_{number}.py"',
        str(POINTS),
    ]
    one_line = f"    Step({', '.join(fields)}),"
    return one_line if len(one_line) <= 120 else "    Step(\n" + "".join(f"        {f},\n" for f in fields) + "    ),"


def next_paragraph(page: str, frame: Frame) -> tuple[str, str | None]:
    """(the page without its last paragraph when that is its Next link, the link's `[label](target)`)."""
    paragraphs = re.split(r"\n\s*\n", page.strip())
    link = re.match(rf"{frame.next}: .*?(\[[^\]]+\]\([^)\s]+\))", " ".join(paragraphs[-1].split()))
    return ("\n\n".join(paragraphs[:-1]) if link else page.strip()), (link.group(1) if link else None)


def scaffold(root: Path, number: str, title: str, records) -> tuple[dict[str, str], list[str]]:
    """(path -> new content of every file written or edited, what changed in the files edited)."""
    created = {
        f"steps/step_{number}.py": fill(SKELETON, number, title, block=TODO_BLOCK),
        f"solutions/solution_{number}.py": fill(SKELETON, number, title, block=ANCHOR_BLOCK),
        f"{step_package(number)}/__init__.py": f'"""Step {number} ({title}): its checks in one place."""\n',
        checklist_file(number): fill(CHECKLIST, number, title),
        hints_file(number): fill(HINTS, number, title),
        f"{zoo_folder(number)}/ok_mean_by_sum.py": ZOO_OK,
        f"{zoo_folder(number)}/bad_mean_of_whole_array.py": ZOO_BAD,
    }
    targets = [*created, zoo_folder(number), *(page_file(number, frame.language) for frame in FRAMES)]
    there = [path for path in targets if (root / path).exists()]
    if there:
        raise Refused(f"{there[0]} exists already, with no record of step {number}: move it away first", code=1)
    edited, changes = {}, []

    def text(relative: str) -> str:
        if relative not in edited:
            if not (root / relative).is_file():
                raise Refused(f"{relative}: missing, and the new step goes into it", code=1)
            edited[relative] = (root / relative).read_text(encoding="utf-8")
        return edited[relative]

    for frame in FRAMES:
        prefix = f"{frame.language}/" if frame.language else ""
        link = f"[{frame.step_in_text} {number}](step_{number}.md)"
        follows = "[the introduction](introduction.md)"  # what the new last page links to, lacking the old one's
        if records:
            previous = page_file(records[-1].number, frame.language)
            kept, old_link = next_paragraph(text(previous), frame)
            edited[previous] = f"{kept}\n\n{frame.next}: {link}: {title}.\n"
            follows = old_link or follows
            changes.append(
                f"{previous}: its {frame.next} link now leads to step {number}"
                + (f" (it led to {old_link}: the new page's does)" if old_link else "")
            )
        template = PAGE_VI if frame.language == "vi" else PAGE
        created[page_file(number, frame.language)] = fill(template, number, title, next=f"{frame.next}: {follows}.")
        edited[SUMMARY] = inserted_after_last(
            text(SUMMARY),
            rf"^- \[.*\]\({re.escape(prefix)}step_\d\d\.md\)",
            f"- [{frame.step} {number}: {title}]({prefix}step_{number}.md)",
            SUMMARY,
        )
    changes.append(f"{SUMMARY}: a line for step {number} in each language")

    steps_py = "tests/check/steps.py"
    tuple_end = re.search(r"^STEPS = \((?:.|\n)*?^\)$", text(steps_py), re.M)
    if not tuple_end:
        raise Refused(f"{steps_py}: no `STEPS = (...)` to append the record to", code=1)
    end = tuple_end.end() - 1
    edited[steps_py] = text(steps_py)[:end] + record_source(number, title) + "\n" + text(steps_py)[end:]
    changes.append(f"{steps_py}: the record of step {number} ({POINTS} points, tier fast)")

    makefile = re.sub(r"^(STEPS[ \t]*:?=.*?)[ \t]*$", rf"\1 s{number}", text("Makefile"), count=1, flags=re.M)
    if makefile == text("Makefile"):
        raise Refused("Makefile: no `STEPS := s01 ...` line to add the new target to", code=1)
    edited["Makefile"] = makefile
    changes.append(f"Makefile: s{number} in STEPS")
    edited["pixi.toml"] = inserted_after_last(
        text("pixi.toml"), r'^s\d\d = "', f's{number} = "python -m tests.check {number}"', "pixi.toml"
    )
    changes.append(f"pixi.toml: the task s{number}")
    try:
        lines, end = step_table(text("README.md"))
    except ValueError as missing:
        raise Refused(str(missing), code=1) from None
    row = f"| {number} | {title} | `steps/step_{number}.py`, `solutions/solution_{number}.py` |\n"
    edited["README.md"] = "".join([*lines[:end], row, *lines[end:]])
    changes.append(f"README.md: the step table's row {number}")
    return {**created, **edited}, [f"created {path}" for path in created] + changes


def new(options) -> int:
    number, title = options.number, " ".join(options.title.split())
    try:
        if options.folder:
            raise Refused(
                "--folder is not supported yet: scaffold a step of one file, then make it a folder by hand the way "
                "step 06 is (its record's `learner`, `solution` and `glue`; its zoo cases are folders)"
            )
        refuse_arguments(number, title, STEPS)
        files, changes = scaffold(REPO_ROOT, number, title, STEPS)
    except Refused as refusal:
        print(f"dev new: {refusal} (nothing written)", file=sys.stderr)
        return refusal.code
    for relative, content in files.items():
        (REPO_ROOT / relative).parent.mkdir(parents=True, exist_ok=True)
        (REPO_ROOT / relative).write_text(content, encoding="utf-8")
    # A fresh process reads the new record: the manifest of shipped skeletons, then the step checked.
    manifest = subprocess.run([sys.executable, "-m", "tests.check.progress"], cwd=REPO_ROOT)
    if manifest.returncode != 0:
        print("dev new: `python -m tests.check.progress` failed (see above): run it again", file=sys.stderr)
        return 1
    changes.append("tests/check/skeletons.txt: the new skeleton's git blob id (`python -m tests.check.progress`)")
    print("\n".join(changes))
    print(
        f"\nchecking the course, and step {number} with the checker (python -m tests.check.dev check {number}):",
        flush=True,
    )
    checked = subprocess.run([sys.executable, "-m", "tests.check.dev", "check", number], cwd=REPO_ROOT)
    print(
        f"""
Step {number} runs: `make s{number}` fails on the skeleton, `make s{number} ARGS=--solution` passes. Its task is a
placeholder (centre each row); make it the step's own:
  1. steps/step_{number}.py and solutions/solution_{number}.py: the function and its TODO block / ANCHOR (the two
     files stay identical outside them), the docstrings.
  2. {checklist_file(number)}: `oracle` (float64, written apart from the solution) and the checks.
  3. {hints_file(number)} (3 to 5 levels, from the idea to the exact lines) and {zoo_folder(number)}/ (`make test`
     wants 10 wrong and 2 right cases, and every check failed by some wrong case).
  4. {page_file(number)}, and {page_file(number, "vi")} (a stub that sends the reader to the English page).
  5. Its record in tests/check/steps.py: points (the course totals {sum(r.points for r in STEPS) + POINTS} now;
     it is meant to total 1000) and tier.
After each skeleton edit run `python -m tests.check.progress`: `reset {number}` restores the skeleton from git
history, so it works once the step is committed (git add the files above, then commit).
Then: `python -m tests.check.dev check` and `make test`."""
    )
    return 0 if checked.returncode == 0 else 1


# -- the command line -------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="python -m tests.check.dev", description="The maintainer's loop: check the course, add a step."
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser(
        "check",
        help="every skeleton fails, every solution passes, and the course's files agree with the records",
        description="Exits 1 on a problem (one line each on stdout: where, and what is wrong), 0 without.",
    )
    checking.add_argument("steps", nargs="*", metavar="NN", help="run the checker on these steps only (default: all)")
    checking.add_argument("--fast", action="store_true", help=f"no checker runs for the tiers {', '.join(SLOW_TIERS)}")
    checking.add_argument("--static", action="store_true", help="no checker runs at all: the files only (a second)")
    adding = commands.add_parser("new", help="scaffold a step after the last one, that runs at once")
    adding.add_argument("number", metavar="NN", help="two digits, after the last step's (e.g. 07)")
    adding.add_argument("title", help='what the learner builds, e.g. "RMSNorm in NumPy"')
    adding.add_argument("--folder", action="store_true", help="a folder step (Mojo and its glue): not supported yet")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    if options.command == "check":
        unknown = [n for n in options.steps if n not in {r.number for r in STEPS}]
        if unknown:
            print(
                f"dev check: no step {unknown[0]}; the steps are {', '.join(r.number for r in STEPS)}", file=sys.stderr
            )
            return USAGE_ERROR
        return check(options)
    return new(options)


if __name__ == "__main__":
    sys.exit(main())
