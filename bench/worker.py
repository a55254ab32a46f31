"""One worker process: measure a list of implementations of one library, write what it found.

    python -m bench.worker TASK.json RESULT.json

TASK holds the implementations (name, and the file each pass comes from), the shapes, the budget and
whether to measure the copy limit. RESULT is rewritten after every measurement, so a crash or a
timeout still leaves the rows measured so far for the parent to report.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from bench import impls, measure


def _reason(error: BaseException) -> str:
    if isinstance(error, impls.Unavailable):
        return str(error)
    return f"{type(error).__name__}: {error}".strip()[:400]


def run(task: dict, result_path: Path) -> None:
    budget = measure.BUDGETS[task["budget"]]
    shapes = [tuple(shape) for shape in task["shapes"]]
    result = {"rows": [], "unavailable": [], "skipped": [], "copy": [], "diagnostics": [], "threads": {}}

    def save():
        result_path.write_text(json.dumps(result, indent=1))

    limit = measure.CopyLimit(budget)

    def copy_gbps(shape) -> float:
        ms = limit.ms(shape)
        result["copy"].append(
            {"shape": list(shape), "median_ms": ms, "gbps": measure.gbps(shape, "forward", ms), "group": task["group"]}
        )
        return result["copy"][-1]["gbps"]

    if task.get("copy"):  # the numpy worker runs first: the copy at every shape, even with no implementation
        for shape in shapes:
            copy_gbps(shape)
        save()
    result["diagnostics"] = fresh_memory_copies(task["group"], shapes, budget, bool(task["impls"]))
    save()

    for entry in task["impls"]:
        impl = impls.BY_NAME[entry["base"]]
        sources = {pass_: (Path(path) if path else None) for pass_, path in entry["sources"].items()}
        broken: dict[str, str] = {}  # pass -> why; once loading fails it fails at every shape
        for shape_index, shape in enumerate(shapes):
            for pass_ in impl.passes:
                if pass_ not in sources or pass_ in broken:
                    continue
                if impl.smallest_shape_only and shape_index > 0:
                    result["skipped"].append(
                        {
                            "impl": entry["name"],
                            "pass": pass_,
                            "shape": list(shape),
                            "reason": "too slow beyond the smallest shape",
                        }
                    )
                    continue
                try:
                    call = impl.prepare(impl, sources.get(pass_), shape, pass_)
                    copy_now = copy_gbps(shape)
                    samples = measure.time_call(call, budget)
                except impls.Unavailable as error:
                    broken[pass_] = _reason(error)
                    continue
                except Exception as error:  # a solution that fails at this shape is reported, not fatal
                    traceback.print_exc()
                    result["skipped"].append(
                        {
                            "impl": entry["name"],
                            "pass": pass_,
                            "shape": list(shape),
                            "reason": f"failed: {_reason(error)}",
                        }
                    )
                    continue
                finally:
                    call = None
                    gc.collect()
                ms = measure.median_ms(samples)
                result["rows"].append(
                    {
                        "impl": entry["name"],
                        "pass": pass_,
                        "shape": list(shape),
                        "dtype": "float32",
                        "median_ms": ms,
                        "gbps": measure.gbps(shape, pass_, ms),
                        "repeats": len(samples),
                        "min_ms": min(samples) * 1e3,
                        "copy_gbps": copy_now,
                    }
                )
                save()
        limit.release()
        for pass_, reason in broken.items():
            result["unavailable"].append({"impl": entry["name"], "pass": pass_, "reason": reason})
        save()

    result["threads"] = _threads(task["group"])
    save()


def fresh_memory_copies(group: str, shapes, budget: measure.Budget, wanted: bool) -> list[dict]:
    """A copy into a freshly allocated array, as every implementation's output is: the difference from
    the copy into existing memory is the price of first-touch page faults on this machine."""
    if group not in ("numpy", "torch") or not wanted:
        return []
    found = []
    for shape in shapes:
        source = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        if group == "numpy":
            what, call = "np.copy (new array)", source.copy
        else:
            import torch

            tensor = torch.from_numpy(source)
            what, call = "torch.clone (new tensor)", tensor.clone
        ms = measure.median_ms(measure.time_call(call, measure.CopyLimit(budget).budget))
        found.append({"what": what, "shape": list(shape), "median_ms": ms, "gbps": measure.gbps(shape, "forward", ms)})
        del source, call
    return found


def _threads(group: str) -> dict:
    """How many threads this library used, as it reports it or as the OS sees it."""
    if group == "numpy":
        return {"numpy": measure.numpy_threads()}
    if group == "torch" and "torch" in sys.modules:
        import torch

        return {"torch": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}}
    if group in ("max", "mojo") and "max" in sys.modules:
        # The MAX runtime names its worker threads "🔥 Thread<i>"; it sizes the pool to the cores.
        workers = sum(count for name, count in measure.process_threads().items() if "Thread" in name)
        return {"max": {"runtime_workers": workers, "source": "OS threads named '… Thread<i>' in /proc"}}
    return {}


def main(argv: list[str]) -> int:
    task_path, result_path = Path(argv[0]), Path(argv[1])
    started = time.perf_counter()
    run(json.loads(task_path.read_text()), result_path)
    print(f"worker {task_path.stem} done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
