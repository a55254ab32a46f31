"""Reports in the formats other tools read: JUnit XML (CI test views) and Markdown (job summaries, gradebooks).

Both take reports in the shape `--json` prints (`Report.as_json()`), so a report read back from disk
(the progress cache, a gradebook's reports/) renders the same as one just run.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.check.printer import MARKS

# XML 1.0 cannot carry most control characters, and a hint may quote what the learner's code printed.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return NOT_XML.sub("\ufffd", text)


def junit(reports: list[dict], *, names: list[str] | None = None, seconds: list[float | None] | None = None):
    """One <testsuite> per report (named by `names`, default each report's file), one <testcase> per check."""
    names = names or [report["file"] for report in reports]
    seconds = seconds or [None] * len(reports)
    root = ET.Element("testsuites", name="layernorm checker")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for report, name, took in zip(reports, names, seconds, strict=True):
        checks = report["checks"]
        counts = {
            "tests": len(checks),
            "failures": sum(c["status"] == "failed" for c in checks),
            "skipped": sum(c["status"] == "skipped" for c in checks),
        }
        suite = ET.SubElement(
            root, "testsuite", name=_xml_text(name), errors="0", **{k: str(v) for k, v in counts.items()}
        )
        if took is not None:
            suite.set("time", f"{took:.3f}")
        for check in checks:
            case = ET.SubElement(suite, "testcase", classname=f"step_{report['step']}", name=_xml_text(check["name"]))
            message = _xml_text(check["message"])
            if check["status"] == "failed":
                ET.SubElement(case, "failure", message=message).text = message
            elif check["status"] == "skipped":
                ET.SubElement(case, "skipped", message=message)
        if report.get("notes"):
            ET.SubElement(suite, "system-out").text = _xml_text("\n".join(report["notes"]))
        totals = {key: totals[key] + counts[key] for key in totals}
    root.attrib.update({key: str(value) for key, value in totals.items()})
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write_junit(path: Path, reports: list[dict], *, names=None, seconds=None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    junit(reports, names=names, seconds=seconds).write(path, encoding="utf-8", xml_declaration=True)


# -- Markdown ----------------------------------------------------------------------------------------
def cell(text) -> str:
    """Text that stays inside one cell of a Markdown table."""
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").strip()


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    """A step's ✅/❌ table: every check with its hint (a cascade of one cause stays visible, one row each)."""
    checks = report["checks"]
    counts = {status: sum(c["status"] == status for c in checks) for status in ("passed", "failed", "skipped")}
    verdict = "every check passes ✅" if report["passed"] else f"{counts['failed']} of {len(checks)} checks fail"
    rows = [[MARKS[c["status"]].strip(), c["name"], c["message"] if c["status"] != "passed" else ""] for c in checks]
    parts = [
        f"### Step {report['step']}: {report['title']}",
        f"`{report['file']}`: {verdict} ({counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped)",
        table(["", "check", "hint"], rows),
    ]
    if report.get("notes"):
        parts.append("\n".join(f"- {cell(note)}" for note in report["notes"]))
    return "\n\n".join(parts) + "\n"
