"""The course, one record per step: what every tool needs to know about a step, said once.

The checker (its title, the learner's file, the reference), status, watch, reset, compare and grade (a
file or a folder of files), Classroom 50 (its points), the project's tests (its tier) and the status of
a machine that cannot check part of it (its parts) all read it here. `python -m tests.check.dev check`
holds the Makefile, pixi.toml, the README's table and the book's contents to these records, and
`dev new` adds one. Its checks live in `tests/check/step_NN/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.check import REPO_ROOT

TIERS = ("fast", "slow", "max", "mojo")  # the pytest marks of pyproject.toml, plus "fast" for none


@dataclass(frozen=True)
class Step:
    number: str  # "01"
    title: str  # what the learner builds, as the report and the README say it
    learner: str  # the learner's file, or their folder (ending in "/"), relative to the repository
    solution: str  # the reference, the same way
    points: int  # its share of a Classroom 50 grade (1000 for the whole course)
    tier: str = "fast"  # what its tests cost: "fast", or the pytest mark they carry ("slow", "max", "mojo")
    parts: tuple[str, ...] = ()  # parts a machine may be unable to check, by the label their checks start with
    glue: str = ""  # a folder step: the Python file the checker imports from the folder

    def __post_init__(self):
        if not (len(self.number) == 2 and self.number.isdigit()):
            raise ValueError(f"a step number is two digits, got {self.number!r}")
        if self.tier not in TIERS:
            raise ValueError(f"step {self.number}: tier must be one of {TIERS}, got {self.tier!r}")
        if self.folder != bool(self.glue) or self.folder != self.solution.endswith("/"):
            raise ValueError(f"step {self.number}: a folder step names its glue file, and both paths end in '/'")

    @property
    def folder(self) -> bool:
        """The step is a folder of files (a Mojo package and its Python glue), not one file."""
        return self.learner.endswith("/")

    @property
    def skeleton(self) -> str:
        """The file the checker imports: the learner's file, or the glue in their folder."""
        return self.learner + self.glue if self.folder else self.learner

    @property
    def reference(self) -> str:
        """The solution's file the checker imports (its glue is named like the folder)."""
        return self.solution + Path(self.solution).name + ".py" if self.folder else self.solution

    def learner_files(self, root: Path = REPO_ROOT) -> list[Path]:
        """The files the learner edits: the step's file, or every Python and Mojo file of their folder."""
        if not self.folder:
            return [root / self.learner]
        return sorted(p for p in (root / self.learner).iterdir() if p.is_file() and p.suffix in (".py", ".mojo"))


STEPS = (
    Step("01", "LayerNorm forward in NumPy", "steps/step_01.py", "solutions/solution_01.py", 100),
    Step("02", "LayerNorm backward in NumPy", "steps/step_02.py", "solutions/solution_02.py", 200),
    Step("03", "LayerNorm as a MAX module", "steps/step_03.py", "solutions/solution_03.py", 150, "max"),
    Step("04", "LayerNorm as a PyTorch nn.Module", "steps/step_04.py", "solutions/solution_04.py", 100, "slow"),
    Step("05", "Pre-LN vs Post-LN", "steps/step_05.py", "solutions/solution_05.py", 200, "slow"),
    Step(
        "06",
        "LayerNorm kernel in Mojo, as a MAX custom op",
        "steps/step_06/",
        "solutions/solution_06/",
        250,
        "mojo",
        parts=("GPU",),
        glue="step_06.py",
    ),
)


def step(number: str) -> Step:
    """The record of step `number` ("01"); KeyError names the steps there are."""
    for record in STEPS:
        if record.number == number:
            return record
    raise KeyError(f"no step {number}; the steps are {', '.join(s.number for s in STEPS)}")
