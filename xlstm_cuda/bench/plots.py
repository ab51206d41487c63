"""PNG charts of a benchmark report: time against each dimension that varies between a kernel's
cases (a sweep), one line for the kernel and one per measured baseline; and the speedup over each
baseline, per case."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

PHASE_LABELS = {"fwd": "forward", "fwd_bwd": "forward + backward"}


def _varying(cases: list[dict]) -> list[str]:
    keys = [k for k, v in cases[0]["params"].items() if isinstance(v, (int, float))]
    return [k for k in keys if len({c["params"][k] for c in cases}) > 1]


def _time_plot(name: str, axis: str, cases: list[dict], out: Path) -> Path:
    cases = sorted(cases, key=lambda c: c["params"][axis])
    xs = [c["params"][axis] for c in cases]
    fig, panels = plt.subplots(1, 2, figsize=(11, 4))
    for panel, phase in zip(panels, PHASE_LABELS):
        series = {"xlstm_cuda": [c[phase].get("median_ms") for c in cases]}
        for baseline in dict.fromkeys(b for c in cases for b in c["baselines"]):
            series[baseline] = [c["baselines"].get(baseline, {}).get(phase, {}).get("median_ms") for c in cases]
        for label, ys in series.items():
            points = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if points:
                panel.plot(*zip(*points), marker="o", label=label)
        panel.set(xscale="log", yscale="log", xlabel=axis, ylabel="median time (ms)",
                  title=f"{name}, {PHASE_LABELS[phase]}")
        panel.grid(True, which="both", alpha=0.3)
        panel.legend()
    path = out / f"time-{name}-{axis}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _speedup_plot(cases: list[dict], out: Path) -> Path:
    labels = [f"{c['name']} " + " ".join(f"{k}={v}" for k, v in c["params"].items()) for c in cases]
    baselines = list(dict.fromkeys(b for c in cases for b, r in c["baselines"].items() if "ratio" in r))
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(cases) * max(len(baselines), 1) + 1.5))
    height = 0.8 / max(len(baselines), 1)
    for j, baseline in enumerate(baselines):
        ratios = [c["baselines"].get(baseline, {}).get("ratio", {}).get("fwd_bwd", 0.0) for c in cases]
        ax.barh([i + j * height for i in range(len(cases))], ratios, height=height, label=baseline)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(cases))], labels, fontsize=7)
    ax.set(xscale="log", xlabel="speedup, forward + backward (baseline time / ours)", title="xlstm_cuda speedups")
    ax.legend()
    path = out / "speedup.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(report: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    by_name: dict[str, list[dict]] = {}
    for case in report["cases"]:
        by_name.setdefault(case["name"], []).append(case)
    paths = [_time_plot(name, axis, cases, out) for name, cases in by_name.items() for axis in _varying(cases)]
    return paths + [_speedup_plot(report["cases"], out)]
