"""Compile step 06's GPU kernel to PTX (NVIDIA) or AMDGCN (AMD) assembly, for machines without Mojo.

    python -m bench.gpu_ptx                  sm_90 (H100, H200) into bench/gpu/build/ (make gpu-ptx)
    python -m bench.gpu_ptx --arch sm_80     another GPU: --arch takes what `mojo build --target-accelerator` does
    python -m bench.gpu_ptx --arch gfx942    AMD MI300X: AMDGCN assembly (compiled, not loadable by the smoke run)

No GPU is needed: `mojo build --target-accelerator ARCH --emit asm` compiles `bench/gpu/harness.mojo`,
which launches the solution's `layer_norm_gpu`, and writes the assembly of that kernel beside its output.
The result is a build artifact (git ignores bench/gpu/build/): `layer_norm_ARCH.ptx` and a manifest,
`layer_norm_ARCH.json`, with what `make gpu-smoke` needs to launch it (the kernel's name, its block
size) and the hash of the layer_norm.mojo it came from, so a stale build is noticed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.check import REPO_ROOT

HARNESS = REPO_ROOT / "bench" / "gpu" / "harness.mojo"
BUILD = REPO_ROOT / "bench" / "gpu" / "build"
PACKAGE = "solution_06"  # the harness imports the kernel from this package, found with -I <its parent>
LAUNCH_CONSTANTS = ("GPU_BLOCK", "GPU_MAX_GRID")  # comptime values in layer_norm.mojo the host must match


def mojo_binary() -> Path:
    beside = Path(sys.executable).with_name("mojo")
    found = beside if beside.exists() else shutil.which("mojo")
    if not found:
        raise SystemExit("mojo is not installed here (it comes with MAX: make venv, or pixi install)")
    return Path(found)


def launch_constants(kernel_source: str) -> dict[str, int]:
    """GPU_BLOCK and GPU_MAX_GRID as layer_norm.mojo declares them (`comptime GPU_BLOCK = 256`)."""
    constants = {}
    for name in LAUNCH_CONSTANTS:
        match = re.search(rf"^comptime {name} = (\d+)", kernel_source, re.M)
        if match is None:
            raise ValueError(f"layer_norm.mojo declares no `comptime {name} = <number>`")
        constants[name.lower().removeprefix("gpu_")] = int(match.group(1))
    return constants


def entry_name(assembly: str) -> str:
    """The kernel's symbol: the one `.entry` of a PTX file, or the one `.amdhsa_kernel` of an AMDGCN file."""
    names = re.findall(r"^\s*\.visible \.entry (\S+?)\(", assembly, re.M) or re.findall(
        r"^\s*\.amdhsa_kernel (\S+)", assembly, re.M
    )
    if len(names) != 1:
        raise ValueError(f"expected one kernel in the assembly, found {len(names)}: {names}")
    return names[0]


def build(arch: str = "sm_90", out: Path = BUILD, solutions: Path = REPO_ROOT / "solutions") -> Path:
    """Compiles the harness for `arch`; returns the manifest's path (the assembly lies beside it)."""
    kernel_source = (solutions / PACKAGE / "layer_norm.mojo").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="layernorm-gpu-") as tmp:
        command = [str(mojo_binary()), "build", "-I", str(solutions), "--target-accelerator", arch]
        command += ["--emit", "asm", str(HARNESS), "-o", str(Path(tmp) / "harness.s")]
        result = subprocess.run(command, capture_output=True, text=True)
        errors = "\n".join(line for line in result.stderr.splitlines() if "Crashpad" not in line)
        if result.returncode != 0:
            raise RuntimeError(f"mojo build failed for {arch}:\n{errors}")
        sidecars = sorted(p for p in Path(tmp).iterdir() if p.suffix in (".ptx", ".amdgcn"))
        if len(sidecars) != 1:
            raise RuntimeError(f"expected one kernel file from mojo build, found {[p.name for p in sidecars]}")
        assembly = sidecars[0].read_text(encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"layer_norm_{arch}{sidecars[0].suffix}"
    target.write_text(assembly, encoding="utf-8")
    manifest = {
        "arch": arch,
        "file": target.name,
        "entry": entry_name(assembly),
        **launch_constants(kernel_source),
        "source": f"solutions/{PACKAGE}/layer_norm.mojo",
        "source_sha256": hashlib.sha256(kernel_source.encode()).hexdigest(),
        "compiler": subprocess.run([str(mojo_binary()), "--version"], capture_output=True, text=True).stdout.strip(),
    }
    path = out / f"layer_norm_{arch}.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_ptx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="sm_90", help="the GPU architecture (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=BUILD, help="where to write (default: bench/gpu/build/)")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.arch, args.out)
    except (RuntimeError, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    data = json.loads(manifest.read_text())
    print(f"{args.out / data['file']}: kernel {data['entry']}, {data['block']} threads per block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
