"""Every kernel declared with __launch_bounds__ is launched with a LaunchBounds (csrc/README.md,
"Kernel code must use"): the emulation cannot read the attribute, so a launch without one would
let a block above the compiled bound pass here and fail on the GPU. Reads the sources only."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for p in (ROOT / "csrc" / "ops").rglob("*") if p.suffix in {".cu", ".cuh", ".h"})


def balanced(text, start):
    """The text from text[start] (an opening bracket) to its matching closing bracket, inclusive."""
    depth = 0
    for i in range(start, len(text)):
        depth += text[i] in "([{"
        depth -= text[i] in ")]}"
        if depth == 0:
            return text[start:i + 1]
    raise ValueError("unbalanced brackets")


def top_level_arguments(call):
    """The arguments of a call's bracketed argument list, split at commas outside brackets and
    template arguments."""
    args, depth, current = [], 0, ""
    for c in call[1:-1]:
        depth += c in "([{<"
        depth -= c in ")]}>"
        if c == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += c
    return args + [current.strip()]


def bounded_kernels():
    kernels = {}
    for path in SOURCES:
        text = path.read_text()
        for match in re.finditer(r"__global__\s+void\s+__launch_bounds__", text):
            bounds = balanced(text, match.end())
            name = re.match(r"\s*(?://[^\n]*\n\s*)?(\w+)\s*\(", text[match.end() + len(bounds):])
            kernels[name.group(1)] = path.relative_to(ROOT)
    return kernels


def launches():
    for path in SOURCES:
        text = path.read_text()
        bounds_constants = set(re.findall(r"constexpr\s+LaunchBounds\s+(\w+)\s*\{", text))
        for match in re.finditer(r"\blaunch(?:_cluster)?_kernel\(", text):
            args = top_level_arguments(balanced(text, match.end() - 1))
            kernel = re.match(r"\w+", args[0]).group(0)
            carried = args[1].startswith("LaunchBounds{") or args[1] in bounds_constants
            yield path.relative_to(ROOT), kernel, carried


def test_every_bounded_kernel_launch_carries_its_bounds():
    kernels = bounded_kernels()
    assert {"slstm_fwd_cluster_kernel", "causal_conv1d_silu_fwd_kernel", "headwise_linear_fwd_kernel",
            "mlstm_step_fwd_kernel"} <= set(kernels)
    found = [(path, kernel, carried) for path, kernel, carried in launches() if kernel in kernels]
    assert {kernel for _, kernel, _ in found} == set(kernels), "a bounded kernel without a launch found"
    missing = [f"{path}: {kernel}" for path, kernel, carried in found if not carried]
    assert not missing, "launched without LaunchBounds: " + ", ".join(missing)
