"""The book: it builds without warnings, every include, link and image resolves, no page drifts
from the code (solution code is included, hints quoted from the checklists, seed numbers computed),
every step page has the same frame, and no step page shows a TODO block's solution outside a fold."""

from __future__ import annotations

import ast
import html
import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from docs import build as book_build
from docs import preprocess
from tests.check import blocks
from tests.check.engine import REPO_ROOT, available_steps, checklist_file, load_checklist

SOURCE = REPO_ROOT / "docs" / "src"

FENCE = re.compile(r"^(\s*)(```|~~~)(.*?)\n(.*?)^\1\2\s*$", re.MULTILINE | re.DOTALL)


def build_book(destination: Path) -> subprocess.CompletedProcess:
    """`make book` into `destination`; strict (a missing page fails) unless BOOK_ALLOW_DRAFTS=1,
    which is for writing the book while pages are missing; test_every_page_in_summary_exists still fails."""
    strict = [] if os.environ.get("BOOK_ALLOW_DRAFTS") == "1" else ["--strict"]
    return subprocess.run(
        [sys.executable, "-m", "docs.build", *strict, "--dest-dir", str(destination)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    destination = tmp_path_factory.mktemp("book")
    return build_book(destination), destination


def html_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.html"))


# -- the build ------------------------------------------------------------------------------------
def test_every_page_in_summary_exists():
    missing = book_build.missing_pages()
    assert not missing, f"SUMMARY.md lists pages that do not exist: {missing}"


def test_book_builds_without_warnings(built):
    result, destination = built
    output = result.stdout + result.stderr
    problems = [line for line in output.splitlines() if re.search(r"\b(WARN|ERROR|warning|error)\b", line, re.I)]
    assert result.returncode == 0, output
    assert not problems, output
    assert (destination / "index.html").exists()


def test_no_directive_left_unresolved(built):
    _, destination = built
    leftovers = [
        f"{page.relative_to(destination)}: {match}"
        for page in html_files(destination)
        for match in re.findall(r"\{\{#[^}]*\}\}", page.read_text(encoding="utf-8"))
    ]
    assert not leftovers, leftovers


def test_formulas_are_drawn_not_left_as_tex(built):
    _, destination = built
    for page in html_files(destination):
        text = page.read_text(encoding="utf-8")
        body = re.sub(r"<(pre|code)\b.*?</\1>", "", text, flags=re.DOTALL)
        assert "$$" not in body, f"{page.relative_to(destination)} shows raw $$ TeX"
    assert 'class="formula"' in (destination / "step_02.html").read_text(encoding="utf-8")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name) and tag in ("a", "img", "link", "script", "iframe"):
                self.links.append((tag, attrs[name]))


def test_every_internal_link_and_image_resolves(built):
    _, destination = built
    parsed = {}
    for page in html_files(destination):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        parsed[page] = parser
    broken = []
    for page, parser in parsed.items():
        for tag, link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "#")) and tag != "a":
                continue  # external (checked by the browser test: nothing may load from outside)
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(destination)}: <{tag}> {link}")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and target in parsed
                and parts.fragment not in parsed[target].ids
            ):
                broken.append(f"{page.relative_to(destination)}: <{tag}> {link} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_no_request_leaves_the_machine(built):
    """Offline reading: no stylesheet, script, font or image is fetched from another host."""
    _, destination = built
    external = []
    for page in html_files(destination):
        for tag, link in re.findall(
            r"<(link|script|img|iframe)\b[^>]*?(?:href|src)=\"(https?:[^\"]+|//[^\"]+)\"",
            page.read_text(encoding="utf-8"),
        ):
            external.append(f"{page.relative_to(destination)}: <{tag}> {link}")
    assert not external, external


# -- no drift between the pages and the code --------------------------------------------------------
def markdown_pages() -> list[Path]:
    return sorted(SOURCE.rglob("*.md"))


def code_lines() -> set[str]:
    """Every non-trivial line of the solutions and the skeletons, stripped (imports are API, not solution)."""
    lines = set()
    for folder in ("solutions", "steps"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".mojo") and "__pycache__" not in path.parts:
                lines.update(
                    line.strip()
                    for line in path.read_text(encoding="utf-8").splitlines()
                    if len(line.strip()) >= 20 and not line.strip().startswith(("#", "from ", "import "))
                )
    return lines


def test_every_include_resolves():
    problems = []
    for page in markdown_pages():
        for target, anchor in re.findall(
            r"\{\{#include\s+([^:}\s]+)(?::([A-Za-z_][\w-]*))?\s*\}\}", page.read_text(encoding="utf-8")
        ):
            path = (page.parent / target).resolve()
            if not path.exists():
                problems.append(f"{page.relative_to(SOURCE)}: {target} does not exist")
            elif anchor and f"ANCHOR: {anchor}" not in path.read_text(encoding="utf-8"):
                problems.append(f"{page.relative_to(SOURCE)}: {target} has no anchor {anchor!r}")
    assert not problems, problems


def test_no_page_pastes_solution_or_skeleton_code():
    """Code from solutions/ or steps/ is shown with {{#include}}, never copied into a page."""
    known = code_lines()
    pasted = []
    for page in markdown_pages():
        for _, _, _, body in FENCE.findall(page.read_text(encoding="utf-8")):
            lines = [line.strip() for line in body.splitlines()]
            copied = [line for line in lines if line in known]
            defines = [line for line in copied if line.startswith(("def ", "class ", "fn ", "struct "))]
            if defines or len(copied) >= 3:
                pasted.append(f"{page.relative_to(SOURCE)}: {(defines or copied)[0]!r}")
        if re.search(r"^\s*def layernorm_(forward|backward)\(", page.read_text(encoding="utf-8"), re.MULTILINE):
            pasted.append(f"{page.relative_to(SOURCE)}: defines layernorm_forward/backward by hand")
    assert not pasted, "paste-by-hand found; use {{#include ../../solutions/...:anchor}}:\n" + "\n".join(pasted)


def checklist_strings(step: str) -> str:
    """Every string the step's checks can print: its package's own and those of the kit it builds hints from."""
    files = [*checklist_file(step).parent.glob("*.py"), *(REPO_ROOT / "tests" / "check" / "kit").glob("*.py")]
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in files]
    return "\n".join(
        node.value
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


@pytest.mark.parametrize("step", available_steps())
def test_quoted_hints_are_the_checkers_words(step):
    """A hint quoted as **"…"** on a step page is text the checklist really prints."""
    strings = checklist_strings(step)
    quoted = re.findall(r'\*\*"([^"]+)"\*\*', (SOURCE / f"step_{step}.md").read_text(encoding="utf-8"))
    assert quoted
    unknown = [
        quote
        for quote in quoted
        if not all(part.strip() in strings for part in re.split(r"…|\.\.\.", quote) if part.strip())
    ]
    assert not unknown, f"step_{step}.md quotes hints that tests/check/step_{step}/ does not print: {unknown}"


def test_generated_check_lists_match_the_checker(built):
    """{{#checklist NN}} lists the checks the engine runs, in its order."""
    _, destination = built
    for step, language in STEP_PAGES:
        page = (destination / language / f"step_{step}.html").read_text(encoding="utf-8")
        for smart, plain in (("‘", "'"), ("’", "'"), ("“", '"'), ("”", '"'), ("…", "...")):
            page = page.replace(smart, plain)  # undo mdBook's smart punctuation
        for check in load_checklist(step).checks:
            assert html.escape(check.name, quote=False) in page, (language, step, check.name)


def _solution(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "solutions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worked_example_numbers_in_the_text_are_what_the_solution_computes():
    forward = _solution("solution_01").layernorm_forward
    solution_02 = _solution("solution_02")
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    _, cache = solution_02.layernorm_forward(x, np.ones(3), np.zeros(3), eps=0.0)
    dx, dgamma, dbeta = solution_02.layernorm_backward(np.ones_like(x), cache)
    claims = {
        "step_01.md": [
            (
                forward(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([2.0, 1.0]), np.array([0.5, -0.5]), eps=0.0)[0][0],
                ["-1.5", "0.5"],
            ),
            (forward(x, np.ones(3), np.zeros(3), eps=0.0)[0][0], ["-1.224745", "0.", "1.224745"]),
            (
                forward(x, np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0]), eps=0.0)[0][0],
                ["-0.724745", "-1.", "5.674235"],
            ),
        ],
        "step_02.md": [(dbeta, ["2.", "2.", "2."]), (dgamma, ["-2.449490", "0.", "2.449490"])],
        "introduction.md": [
            (
                forward(np.array([[2.0, 3.0, 5.0, 6.0]]), np.ones(4), np.zeros(4), eps=1e-4)[0][0],
                ["-1.2649", "-0.6324", "0.6324", "1.2649"],
            ),
        ],
    }
    for page, checks in claims.items():
        text = (SOURCE / page).read_text(encoding="utf-8")
        for computed, shown in checks:
            for value, written in zip(computed, shown, strict=True):
                assert float(written) == pytest.approx(value, abs=0.6 * 10.0 ** -max(len(written.split(".")[1]), 1)), (
                    page,
                    written,
                    value,
                )
            assert all(written.rstrip(".") in text for written in shown), (page, shown)
    assert np.allclose(dx, 0.0) and "all zeros" in (SOURCE / "step_02.md").read_text(encoding="utf-8")
    assert (SOURCE / "vi" / "introduction.md").read_text(encoding="utf-8").count("1.2649") == 2


def test_formulas_on_my_pages_are_correct_and_garbled_variants_only_as_warnings():
    step_01 = (SOURCE / "step_01.md").read_text(encoding="utf-8")
    assert r"\sqrt{\sigma^2 + \epsilon}" in step_01
    assert r"\frac{1}{D}\sum_{j=1}^{D} (x_j - \mu)^2" in step_01  # biased: 1/D
    for page in markdown_pages():
        text = page.read_text(encoding="utf-8")
        assert r"\sqrt{\sigma^2} + \epsilon" not in text and "D-1}" not in text, page


# -- figures and languages ---------------------------------------------------------------------
def test_images_have_alt_text_and_every_figure_is_used():
    used = set()
    for page in markdown_pages():
        text = page.read_text(encoding="utf-8")
        for tag in re.findall(r"<img\b[^>]*>", text):
            assert re.search(r'alt="[^"]{20,}"', tag), f"{page.relative_to(SOURCE)}: image without alt text: {tag}"
            used.update(Path(src).name for src in re.findall(r'src="([^"]+)"', tag))
        for alt, src in re.findall(r"!\[([^\]]*)\]\(([^)\s]+)[^)]*\)", text):
            assert len(alt.strip()) >= 20, f"{page.relative_to(SOURCE)}: image without alt text: {src}"
            used.add(Path(src).name)
    unused = sorted(path.name for path in (SOURCE / "figures").glob("*.png") if path.name not in used)
    assert not unused, f"figures no page shows: {unused}"


def test_every_english_step_page_has_a_vietnamese_counterpart_in_the_sidebar():
    summary = (SOURCE / "SUMMARY.md").read_text(encoding="utf-8")
    assert "# Tiếng Việt" in summary
    for page in ["introduction.md"] + [f"step_{step}.md" for step in available_steps()]:
        assert (SOURCE / "vi" / page).exists(), f"docs/src/vi/{page} is missing"
        assert f"(vi/{page})" in summary, f"SUMMARY.md does not list vi/{page}"


def test_language_switch_links_both_ways(built):
    _, destination = built
    english = (destination / "step_01.html").read_text(encoding="utf-8")
    vietnamese = (destination / "vi" / "step_01.html").read_text(encoding="utf-8")
    assert re.search(r'class="lang-switch".*?href="vi/step_01.html"', english, re.DOTALL)
    assert re.search(r'class="lang-switch".*?href="../step_01.html"', vietnamese, re.DOTALL)
    assert '<div lang="vi">' in vietnamese


def test_preprocessor_reports_a_formula_it_cannot_draw():
    with pytest.raises(preprocess.PageError, match="mathtext cannot draw"):
        preprocess.render_display_math("$$\n\\frac{1}{\n$$")
    assert "$$" in preprocess.render_display_math("```text\n$$ not maths in code $$\n```")


# -- every step page has the same frame ------------------------------------------------------------
# language folder -> the header's three labels, and the word that opens the page's last line
FRAME = {
    "": (("Edit", "Check", "Reference"), "Next"),
    "vi": (("Sửa", "Kiểm tra", "Lời giải tham khảo"), "Tiếp theo"),
}
STEP_PAGES = [
    (step, language)
    for step in available_steps()
    for language in FRAME
    if language == "" or (SOURCE / language / f"step_{step}.md").exists()
]
STEP_PAGE_IDS = [f"{language}/{step}".lstrip("/") for step, language in STEP_PAGES]


def step_page(step: str, language: str) -> Path:
    return SOURCE / language / f"step_{step}.md"


def step_folders(step: str) -> tuple[Path, Path]:
    """(skeleton, solution): the step's files, or its folders for a step that is a folder."""
    checklist = load_checklist(step)
    skeleton, solution = REPO_ROOT / checklist.skeleton, REPO_ROOT / checklist.solution
    if solution.parent.name.startswith("solution_"):
        return skeleton.parent, solution.parent
    return skeleton, solution


def learner_files(step: str) -> set[str]:
    """The files of the step that hold TODO blocks: what the learner edits."""
    skeleton, solution = step_folders(step)
    return {
        mine.relative_to(REPO_ROOT).as_posix()
        for mine, _ in blocks.file_pairs(skeleton, solution)
        if blocks.blocks(mine.read_text(encoding="utf-8"))
    }


@pytest.mark.parametrize(("step", "language"), STEP_PAGES, ids=STEP_PAGE_IDS)
def test_step_page_opens_with_edit_check_reference(step, language):
    (edit, check, reference), _ = FRAME[language]
    page = step_page(step, language)
    intro = page.read_text(encoding="utf-8").split("\n## ", 1)[0]  # before the first section
    fields = dict(re.findall(r"^- ([^:\n]+): (.+)$", intro, re.MULTILINE))
    missing = [label for label in (edit, check, reference) if label not in fields]
    assert not missing, f"{page.relative_to(SOURCE)} opens without the lines {missing} (see step_01.md)"
    assert set(re.findall(r"`([^`]+)`", fields[edit])) == learner_files(step), fields[edit]
    assert f"`make s{step}`" in fields[check], fields[check]
    _, solution = step_folders(step)
    named = re.findall(r"`([^`]+)`", fields[reference])
    assert named and (REPO_ROOT / named[0]).resolve() == solution, fields[reference]


@pytest.mark.parametrize(("step", "language"), STEP_PAGES, ids=STEP_PAGE_IDS)
def test_step_page_lists_its_checks_and_ends_with_next(step, language):
    _, next_word = FRAME[language]
    page = step_page(step, language)
    text = page.read_text(encoding="utf-8")
    assert re.findall(r"\{\{#checklist\s+(\d\d)\s*\}\}", text) == [step], f"{page.relative_to(SOURCE)}: checklist"
    last = " ".join(re.split(r"\n\s*\n", text.strip())[-1].split())  # the last paragraph
    link = re.match(rf"{next_word}: .*?\[[^\]]+\]\(([^)#\s]+)(#[^)]*)?\)", last)
    assert link, f"{page.relative_to(SOURCE)} does not end with '{next_word}: [...](page.md)': {last!r}"
    target = (page.parent / link.group(1)).resolve()
    assert target.is_file(), f"{page.relative_to(SOURCE)}: {link.group(1)} does not exist"
    summary = (SOURCE / "SUMMARY.md").read_text(encoding="utf-8")
    assert target.relative_to(SOURCE).as_posix() in book_build.planned_pages(summary), target
    steps = available_steps()
    if step != steps[-1]:
        assert target == step_page(steps[steps.index(step) + 1], language).resolve(), link.group(1)


def test_commands_on_the_pages_run_from_a_fresh_clone():
    """A command is `make …` or `.venv/bin/python …`: a bare `python` is not the venv's outside it."""
    bare = []
    for page in markdown_pages():
        for _, _, info, body in FENCE.findall(page.read_text(encoding="utf-8")):
            if info.strip() in ("", "sh", "bash", "shell", "console", "text"):
                bare += [
                    f"{page.relative_to(SOURCE)}: {line.strip()}"
                    for line in body.splitlines()
                    if re.match(r"\s*\$?\s*(python3?|pip3?|pytest)\s", line)
                ]
    assert not bare, bare


# -- the pages teach without giving the answer ------------------------------------------------------
def todo_answers() -> dict[str, set[str]]:
    """Each line that a TODO block's solution adds, stripped -> the blocks it fills ("file:name").

    Lines that a skeleton already shows (given code, in any step) and lines too short to say
    anything (`col += 1`, `)`) do not count."""
    pairs = [pair for step in available_steps() for pair in blocks.file_pairs(*step_folders(step))]
    given = {line.strip() for mine, _ in pairs for line in mine.read_text(encoding="utf-8").splitlines()}
    answers: dict[str, set[str]] = {}
    for mine, reference in pairs:
        skeleton = mine.read_text(encoding="utf-8")
        solved = blocks.blocks(reference.read_text(encoding="utf-8"), blocks.SOLUTION)
        for name in blocks.blocks(skeleton):
            for line in solved[name]:
                line = line.strip()
                if len(line) >= 12 and not line.startswith("#") and line not in given:
                    answers.setdefault(line, set()).add(f"{reference.relative_to(REPO_ROOT)}:{name}")
    return answers


class _UnfoldedCode(HTMLParser):
    """The text of every <pre> block outside <details>."""

    def __init__(self):
        super().__init__()
        self.folds, self.pre, self.blocks = 0, None, []

    def handle_starttag(self, tag, attrs):
        if tag == "details":
            self.folds += 1
        elif tag == "pre" and not self.folds:
            self.pre = []

    def handle_endtag(self, tag):
        if tag == "details":
            self.folds -= 1
        elif tag == "pre" and self.pre is not None:
            self.blocks.append("".join(self.pre))
            self.pre = None

    def handle_data(self, data):
        if self.pre is not None:
            self.pre.append(data)


def unfolded_answers(page_html: str, answers: dict[str, set[str]]) -> list[tuple[str, set[str]]]:
    """(first answer line, the TODO blocks it fills) for each code block outside <details> that shows one."""
    parser = _UnfoldedCode()
    parser.feed(page_html)
    found = []
    for block in parser.blocks:
        shown = [line.strip() for line in block.splitlines() if line.strip() in answers]
        if shown:
            found.append((shown[0], set().union(*(answers[line] for line in shown))))
    return found


def test_every_todo_block_has_answer_lines_to_look_for():
    """Guards the fold check below from passing because it looks for nothing."""
    filled = set().union(*todo_answers().values())
    for step in available_steps():
        for mine, reference in blocks.file_pairs(*step_folders(step)):
            for name in blocks.blocks(mine.read_text(encoding="utf-8")):
                assert f"{reference.relative_to(REPO_ROOT)}:{name}" in filled, (reference, name)


def test_the_fold_check_sees_an_answer_outside_details_only():
    answers = todo_answers()
    line = max(answers, key=len)
    code = f'<pre><code class="language-mojo">    {html.escape(line)}\n</code></pre>'
    assert unfolded_answers(f"<p>Step</p>{code}", answers) == [(line, answers[line])]
    assert unfolded_answers(f"<details><summary>Show</summary>\n{code}\n</details>{code}", answers)
    assert unfolded_answers(f"<details><summary>Show</summary><div>{code}</div></details>", answers) == []


def test_no_todo_blocks_solution_is_shown_unfolded(built):
    """Solution code that fills a learner's TODO block sits inside a <details> fold on every step page."""
    _, destination = built
    answers = todo_answers()
    shown = [
        f"{page}: {sorted(filled)} shown outside <details>, e.g. {line!r}"
        for step, language in STEP_PAGES
        for page in [Path(language, f"step_{step}.html").as_posix()]
        for line, filled in unfolded_answers((destination / page).read_text(encoding="utf-8"), answers)
    ]
    assert not shown, "\n".join(shown)
