"""mdBook preprocessor of this book: offline formulas, the language switch, generated check lists.

mdBook runs it (see book.toml) with `supports html`, then with `[context, book]` as JSON on stdin,
and reads the book back on stdout. It changes each chapter's Markdown:

- `$$ … $$` blocks become SVG images drawn with matplotlib's mathtext, inlined as data URIs: the
  formulas render without MathJax and without a network. Lines inside a `$$` block split at `\\`.
- Every page gets a link to its other-language counterpart: `x.md` <-> `vi/x.md`. English pages
  without a Vietnamese version link to the Vietnamese introduction, and back.
- Vietnamese pages are wrapped in `<div lang="vi">` (browsers pick fonts and hyphenation by it).
- `{{#checklist NN}}` becomes the list of check names of `tests/check/step_NN/checklist.py`, as the checker
  loads them, so a page never lists checks that the checker does not run.

A formula that mathtext cannot draw, or an unknown step, stops the build with the page's name.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import sys
from pathlib import Path

VIETNAMESE_DIR = "vi"
FONT_SIZE = 14  # points; close to the body text of mdBook's theme
CHECKLIST = re.compile(r"\{\{#checklist\s+(\d\d)\s*\}\}")
FENCE = re.compile(r"^\s*(```|~~~)")


class PageError(Exception):
    pass


# -- formulas ------------------------------------------------------------------------------------
_renderer = None


def _pyplot():
    global _renderer
    if _renderer is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.rcParams["mathtext.fontset"] = "cm"
        plt.rcParams["svg.hashsalt"] = "layernorm"  # stable ids: the same page builds the same bytes
        _renderer = plt
    return _renderer


def formula_svg(tex: str) -> bytes:
    """One line of TeX drawn by mathtext, as a tight SVG with the glyphs as paths."""
    plt = _pyplot()
    figure = plt.figure(figsize=(0.01, 0.01))
    figure.text(0, 0, f"${tex}$", fontsize=FONT_SIZE)
    buffer = io.BytesIO()
    try:
        figure.savefig(
            buffer, format="svg", bbox_inches="tight", pad_inches=0.04, transparent=True, metadata={"Date": None}
        )
    except ValueError as error:  # mathtext's parse errors
        raise PageError(f"mathtext cannot draw ${tex}$: {str(error).splitlines()[0]}") from None
    finally:
        plt.close(figure)
    return buffer.getvalue()


def formula_html(tex: str) -> str:
    tex = re.sub(r"\\frac(?![a-zA-Z])", r"\\dfrac", tex)  # display style: full-size fractions
    lines = [line.replace("&", " ").strip() for line in re.split(r"\\\\", tex)]
    images = []
    for line in filter(None, lines):
        data = base64.b64encode(formula_svg(line)).decode("ascii")
        images.append(f'<img class="formula" alt="{html.escape(line)}" src="data:image/svg+xml;base64,{data}">')
    return '<div class="math-display">' + "<br>".join(images) + "</div>"


def render_display_math(text: str) -> str:
    """Replace `$$ … $$` blocks outside fenced code with their images."""
    out, math, fence = [], None, None
    for line in text.split("\n"):
        stripped = line.strip()
        if math is not None:
            if stripped.endswith("$$"):
                math.append(stripped[:-2])
                out.append(formula_html(" ".join(math)))
                math = None
            else:
                math.append(stripped)
            continue
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1) == fence:
                fence = None
            out.append(line)
        elif opening:
            fence = opening.group(1)
            out.append(line)
        elif stripped.startswith("$$"):
            body = stripped[2:]
            if body.endswith("$$"):
                out.append(formula_html(body[:-2]))
            else:
                math = [body]
        else:
            out.append(line)
    if math is not None:
        raise PageError("a $$ block is never closed")
    return "\n".join(out)


# -- language switch -----------------------------------------------------------------------------
def language_switch(path: str, source: Path) -> str:
    """A Markdown link from `path` (relative to src) to its counterpart in the other language."""
    parts = Path(path).parts
    if parts[0] == VIETNAMESE_DIR:
        english = Path(*parts[1:])
        target = english if (source / english).exists() else Path("introduction.md")
        label, up = "English", "../" * (len(parts) - 1)
    else:
        vietnamese = Path(VIETNAMESE_DIR, *parts)
        target = vietnamese if (source / vietnamese).exists() else Path(VIETNAMESE_DIR, "introduction.md")
        label, up = "Tiếng Việt", "../" * (len(parts) - 1)
        if not (source / target).exists():
            return ""
    return f'<div class="lang-switch">\n\n[{label}]({up}{target.as_posix()})\n\n</div>\n\n'


# -- check lists ---------------------------------------------------------------------------------
def check_names(repo: Path, step: str) -> list[str]:
    """The names of step `step`'s checks, in order, as the checker's engine loads them."""
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from tests.check.engine import available_steps, load_checklist

    if step not in available_steps():
        raise PageError(f"{{{{#checklist {step}}}}}: there is no tests/check/step_{step}/")
    return [check.name for check in load_checklist(step).checks]


def markdown_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def expand_checklists(text: str, repo: Path) -> str:
    def listing(match: re.Match) -> str:
        return "\n".join(f"- {markdown_escape(name)}" for name in check_names(repo, match.group(1)))

    return CHECKLIST.sub(listing, text)


# -- the book ------------------------------------------------------------------------------------
def chapters(items):
    for item in items:
        if isinstance(item, dict) and "Chapter" in item:
            yield item["Chapter"]
            yield from chapters(item["Chapter"].get("sub_items", []))


def process_chapter(chapter: dict, source: Path, repo: Path) -> str:
    text = expand_checklists(chapter["content"], repo)
    text = render_display_math(text)
    path = chapter.get("path")
    if path:
        text = language_switch(path, source) + text
        if Path(path).parts[0] == VIETNAMESE_DIR:
            text = f'<div lang="vi">\n\n{text}\n\n</div>\n'
    return text


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "supports":
        return 0 if argv[2:] == ["html"] else 1
    context, book = json.load(sys.stdin)
    root = Path(context["root"])
    source = root / (context["config"].get("book", {}).get("src") or "src")
    repo = root.parent
    failures = []
    for chapter in chapters(book.get("items", book.get("sections", []))):
        if chapter.get("path") is None:
            continue  # a draft chapter: nothing to render
        try:
            chapter["content"] = process_chapter(chapter, source, repo)
        except PageError as error:
            failures.append(f"{chapter['path']}: {error}")
    if failures:
        print("error: " + "\nerror: ".join(failures), file=sys.stderr)
        return 1
    json.dump(book, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
