"""Resource usage of every CUDA kernel in the built module for sm_90, as the table in csrc/README.md
("SASS resource usage") shows it: registers, static shared memory, stack frame and local memory from
`cuobjdump -res-usage`, and the local-memory loads and stores (LDL / STL: register spills, or a local
array) counted in the SASS (`cuobjdump -sass`). One row per kernel and template arguments other than
the element type; a value that differs between element types is given for each, in the order
fp32 / bf16 / fp16. From the repository root:

    python3 -m tests.sass.resource_usage           # prints the table of the module xlstm_cuda._C
    python3 -m tests.sass.resource_usage --write   # rewrites csrc/README.md's table (keeps "why")

tests/sass/test_resource_usage.py fails when the README's table is not the module's."""
import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "csrc" / "README.md"
BEGIN, END = "<!-- sass-resources:begin -->", "<!-- sass-resources:end -->"
ARCH = "sm_90"
DTYPES = {"float": "fp32", "c10::BFloat16": "bf16", "c10::Half": "fp16"}
HEADER = ["Kernel", "Registers", "Static shared (B)", "Stack (B)", "Local (B)", "LDL / STL", "Why"]


def cuda_tool(name: str) -> str:
    """triton's bundled copy (torch's CUDA build installs triton), else one on PATH."""
    try:
        import triton
    except ImportError:
        triton = None
    if triton is not None:
        bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
        if bundled.exists():
            return str(bundled)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"{name} not found: install triton (torch's CUDA build brings it) or a CUDA toolkit")
    return found


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@dataclass
class Usage:
    registers: int
    shared: int
    stack: int
    local: int
    local_loads: int = 0
    local_stores: int = 0


def resource_usage(module: str) -> dict[str, Usage]:
    """cuobjdump -res-usage of the module's sm_90 code, by mangled kernel name (a lone cubin, which
    names no arch, is taken as sm_90)."""
    usage, arch = {}, None
    lines = iter(run(cuda_tool("cuobjdump"), "-res-usage", module).splitlines())
    for line in lines:
        if found := re.match(r"\s*arch = (\S+)", line):
            arch = found.group(1)
        elif (found := re.match(r"\s*Function (\S+):$", line)) and arch in (ARCH, None):
            fields = dict(re.findall(r"(\w+):(\d+)", next(lines)))
            usage[found.group(1)] = Usage(int(fields["REG"]), int(fields["SHARED"]), int(fields["STACK"]),
                                          int(fields["LOCAL"]))
    return usage


def count_local_accesses(sass: str, usage: dict[str, Usage]) -> None:
    """LDL and STL instructions of each kernel, in the module's sm_90 SASS (`cuobjdump -sass`)."""
    arch = name = None
    for part in re.split(r"^(\s*arch = \S+|\s*Function : \S+)\s*$", sass, flags=re.MULTILINE):
        if found := re.fullmatch(r"\s*arch = (\S+)", part):
            arch = found.group(1)
        elif found := re.fullmatch(r"\s*Function : (\S+)", part):
            name = found.group(1)
        elif arch in (ARCH, None) and name in usage:
            usage[name].local_loads += len(re.findall(r"\bLDL\b", part))
            usage[name].local_stores += len(re.findall(r"\bSTL\b", part))


def enumerators() -> dict[str, list[str]]:
    """The enumerators of every `enum class` in csrc, in order: demangled names show enum template
    arguments as (xlstm::Name)N."""
    found = {}
    for header in sorted((ROOT / "csrc").rglob("*.h")):
        for name, body in re.findall(r"enum class (\w+)\s*(?::\s*\w+\s*)?\{([^}]*)\}", header.read_text()):
            found[name] = [e.split("=")[0].strip() for e in body.split(",") if e.strip()]
    return found


def split_template_arguments(text: str) -> list[str]:
    arguments, depth, current = [], 0, ""
    for char in text:
        if char in "<(":
            depth += 1
        elif char in ">)":
            depth -= 1
        if char == "," and depth == 0:
            arguments.append(current.strip())
            current = ""
        else:
            current += char
    return arguments + [current.strip()] if current.strip() else arguments


def demangle(names: list[str]) -> list[str]:
    return subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                          check=True).stdout.splitlines()


def row_key(demangled: str, enums: dict[str, list[str]]) -> tuple[str, str]:
    """(kernel with its template arguments other than the element type, element type)."""
    found = re.match(r"(?:void )?(?:xlstm::)?(\w+)(?:<(.*)>)?\(", demangled)  # templates show the return type
    if found is None:
        return demangled, ""
    name, arguments = found.group(1), split_template_arguments(found.group(2) or "")
    dtype, rest = "", []
    for argument in arguments:
        if argument in DTYPES and not dtype:
            dtype = DTYPES[argument]
            continue
        if enum := re.fullmatch(r"\((?:\w+::)*(\w+)\)(\d+)", argument):
            names = enums.get(enum.group(1), [])
            argument = names[int(enum.group(2))] if int(enum.group(2)) < len(names) else argument
        rest.append(argument)
    return (f"{name}<{', '.join(rest)}>" if rest else name), dtype


def per_dtype(values: dict[str, int]) -> str:
    distinct = set(values.values())
    if len(distinct) == 1:
        return str(distinct.pop())
    return " / ".join(str(values.get(dtype, "-")) for dtype in DTYPES.values())


def table_rows(module: str, sass: str | None = None) -> dict[str, list[str]]:
    """Table cells (without "why") by kernel, sorted by kernel; `sass`: the module's `cuobjdump -sass`
    where the caller has it."""
    usage = resource_usage(module)
    count_local_accesses(run(cuda_tool("cuobjdump"), "-sass", module) if sass is None else sass, usage)
    enums = enumerators()
    grouped: dict[str, dict[str, Usage]] = {}
    for demangled, kernel_usage in zip(demangle(list(usage)), usage.values()):
        kernel, dtype = row_key(demangled, enums)
        grouped.setdefault(kernel, {})[dtype] = kernel_usage
    rows = {}
    for kernel in sorted(grouped):
        cells = {field: per_dtype({dtype: getattr(u, field) for dtype, u in grouped[kernel].items()})
                 for field in ("registers", "shared", "stack", "local", "local_loads", "local_stores")}
        rows[kernel] = [f"`{kernel}`", cells["registers"], cells["shared"], cells["stack"], cells["local"],
                        f"{cells['local_loads']} / {cells['local_stores']}"]
    return rows


def spills(row: list[str]) -> bool:
    """Whether a row's kernel touches local memory (LDL / STL in any element type)."""
    return any(number != "0" for number in re.findall(r"\d+", row[5]))


def readme_table() -> tuple[str, dict[str, str]]:
    """The README's table as text, and its "why" cells by kernel."""
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return "", {}
    table = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()
    why = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == len(HEADER):
            why[cells[0].strip("`")] = cells[-1]
    return table, why


def render(rows: dict[str, list[str]], why: dict[str, str]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(cells + [why.get(kernel, "")]) + " |" for kernel, cells in rows.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", help="the extension module (default: xlstm_cuda._C)")
    parser.add_argument("--write", action="store_true", help="rewrite csrc/README.md's table")
    args = parser.parse_args()
    if args.module is None:
        import xlstm_cuda
        args.module = xlstm_cuda._C.__file__
    table = render(table_rows(args.module), readme_table()[1])
    if not args.write:
        print(table)
        return
    text = README.read_text()
    README.write_text(text[:text.index(BEGIN) + len(BEGIN)] + "\n" + table + "\n" + text[text.index(END):])


if __name__ == "__main__":
    main()
