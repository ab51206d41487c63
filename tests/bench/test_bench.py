"""The benchmark harness runs end to end on tiny sizes and reports every field; timings are never asserted."""
import json
import sys
import textwrap

import pytest
import torch

from xlstm_cuda.bench.__main__ import main

STATS = ("median_ms", "min_ms", "max_ms", "iqr_ms", "reps", "tokens_per_s", "peak_mem_bytes")

# Stand-ins for the optional reference packages, with their step functions' calling conventions
# (shapes asserted, q, k, v squeezed in place as xlstm does), computing with python_ref.
FAKE_PACKAGES = {
    "xlstm/blocks/mlstm/backends.py": """
        from xlstm_cuda import reference as python_ref

        def recurrent_step_stabilized_simple(c, n, m, q, k, v, i, f, eps=1e-6):
            B, NH, _, _ = q.shape
            assert n.shape[-1] == 1 and m.shape == i.shape == f.shape == (B, NH, 1, 1)
            q, k, v = q.squeeze_(2), k.squeeze_(2), v.squeeze_(2)
            return python_ref.mlstm_step(q, k, v, i[..., 0, 0], f[..., 0, 0], (c, n[..., 0], m[..., 0, 0]), eps)
    """,
    "mlstm_kernels/torch/recurrent/__init__.py": """
        from xlstm_cuda import reference as python_ref

        def mlstm_recurrent_step__native(q, k, v, i, f, c, n, m, eps=1e-6, **kwargs):
            assert m.shape == i.shape == f.shape == (*q.shape[:2], 1)
            state = (c, n, m[..., 0].float())
            h, state = python_ref.mlstm_step(*(x.float() for x in (q, k, v, i[..., 0], f[..., 0])), state, eps)
            return h.to(q.dtype), state
    """,
}


def run_bench(tmp_path, capsys, *args):
    json_path, csv_path = tmp_path / "bench.json", tmp_path / "bench.csv"
    assert main(["--tiny", "--device", "cpu", "--threads", "1", "--json", str(json_path), "--csv", str(csv_path),
                 *args]) == 0
    out, err = capsys.readouterr()
    assert csv_path.read_text().count("\n") == len(json.loads(json_path.read_text())["cases"]) + 1
    return json.loads(json_path.read_text()), out, err


REFERENCE_PACKAGES = ("xlstm", "mlstm_kernels")


def reference_modules() -> list[str]:
    return [name for name in sys.modules if name.split(".")[0] in REFERENCE_PACKAGES]


def forget_reference_packages(monkeypatch):
    """Drop the reference packages from sys.modules (monkeypatch restores them) so that imports look anew."""
    for name in reference_modules():
        monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def without_reference_packages(monkeypatch):
    """As if they were not installed, whether they are or not."""
    forget_reference_packages(monkeypatch)
    for name in REFERENCE_PACKAGES:
        monkeypatch.setitem(sys.modules, name, None)  # find_spec answers None, imports fail


@pytest.fixture
def fake_reference_packages(tmp_path, monkeypatch):
    root = tmp_path / "packages"
    for path, source in FAKE_PACKAGES.items():
        file = root / path
        for package in [*file.relative_to(root).parents][:-1]:
            (root / package).mkdir(parents=True, exist_ok=True)
            (root / package / "__init__.py").touch()
        file.write_text(textwrap.dedent(source))
    forget_reference_packages(monkeypatch)
    monkeypatch.syspath_prepend(str(root))
    yield
    for name in reference_modules():  # the fakes; monkeypatch then restores what was there before
        del sys.modules[name]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bench_reports_every_case(tmp_path, capsys, without_reference_packages, dtype):
    report, table, progress = run_bench(tmp_path, capsys, "--suite", "step", "--dtype", dtype)
    header = report["header"]
    for field in ("date", "cpu", "threads", "load_average", "load_average_end", "torch", "build_info", "git_commit"):
        assert field in header
    assert header["threads"] == 1 and header["ceilings"] is None
    assert report["cases"]
    for case in report["cases"]:
        assert case["name"] == "mlstm_step" and case["dtype"] == dtype and set(case["params"]) >= {"B", "NH"}
        for phase in ("fwd", "fwd_bwd"):
            assert set(case[phase]) >= set(STATS) and case[phase]["min_ms"] <= case[phase]["max_ms"]
        assert set(case["baselines"]["python_ref"]["ratio"]) == {"fwd", "fwd_bwd"}
        assert case["baselines"]["xlstm"] == {"skipped": "not installed"}
        assert case["baselines"]["mlstm_kernels"] == {"skipped": "not installed"}
    assert "vs python_ref" in table and "xlstm: skipped (not installed)" in table
    assert table.count("mlstm_step  cpu") == len(report["cases"])
    assert progress.count("mlstm_step") == len(report["cases"])


def test_bench_measures_installed_reference_packages(tmp_path, capsys, fake_reference_packages):
    report, table, _ = run_bench(tmp_path, capsys, "--suite", "step")
    for case in report["cases"]:
        for name in ("python_ref", "xlstm", "mlstm_kernels"):
            assert set(case["baselines"][name]["ratio"]) == {"fwd", "fwd_bwd"}, (name, case["baselines"][name])
    assert "skipped" not in table


def test_bench_sequence_suites(tmp_path, capsys):
    report, table, _ = run_bench(tmp_path, capsys, "--suite", "slstm")
    report_mlstm, table_mlstm, _ = run_bench(tmp_path, capsys, "--suite", "mlstm")
    report_layer, table_layer, _ = run_bench(tmp_path, capsys, "--suite", "layer")
    assert [c["name"] for c in report["cases"]] == ["slstm"]
    assert [c["name"] for c in report_mlstm["cases"]] == ["mlstm_chunkwise"]
    assert [c["name"] for c in report_layer["cases"]] == ["sLSTMLayer", "mLSTMLayer"]
    for case in report["cases"]:
        assert case["params"]["path"] == "cpu"
        for name in ("python_ref", "nn.LSTM"):
            assert set(case["baselines"][name]["ratio"]) == {"fwd", "fwd_bwd"}
    for case in report_mlstm["cases"]:
        for name in ("python_ref", "python_ref_parallel", "sdpa"):
            assert set(case["baselines"][name]["ratio"]) == {"fwd", "fwd_bwd"}
    for case in report_layer["cases"]:
        assert set(case["baselines"]["nn.LSTM"]["ratio"]) == {"fwd", "fwd_bwd"}
        reference = case["baselines"]["xlstm"]  # measured where the reference package is installed
        assert set(reference.get("ratio", {})) == {"fwd", "fwd_bwd"} or "skipped" in reference
    assert "vs nn.LSTM" in table and "vs sdpa" in table_mlstm and "vs nn.LSTM" in table_layer


def test_bench_sweep_and_plots(tmp_path, capsys):
    report, table, err = run_bench(tmp_path, capsys, "--suite", "slstm", "--sweep", "seq", "--plot", str(tmp_path))
    lengths = [case["params"]["S"] for case in report["cases"]]
    assert len(lengths) > 2 and lengths == sorted(set(lengths))
    assert len({case["params"]["B"] for case in report["cases"]}) == 1
    for name in ("time-slstm-S.png", "speedup.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args", [["--suite", "nonexistent"], ["--device", "tpu"], ["--threads", "0"]])
def test_bench_rejects_bad_arguments(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_bench_reports_fractions_of_device_ceilings():
    """The GPU-only columns, fed made-up ceilings so that they are exercised without a GPU."""
    from xlstm_cuda.bench import harness
    from xlstm_cuda.bench.cases import SUITES

    ceilings = dict(hbm_bytes_per_s=1e11, matmul_flops_per_s=1e12, method="made up")
    case = SUITES["step"](torch.device("cpu"), torch.float32, "tiny")[0]
    result = harness.run_case(case, harness.CpuTimer(), 0.0, harness.PRESETS["tiny"], ceilings)
    for phase in ("fwd", "fwd_bwd"):
        assert set(result["ceiling_fraction"][phase]) == {"hbm", "matmul", "bytes", "flops"}
    result.update(suite="step", device="cpu", dtype="float32")
    header = dict(preset="tiny", cpu="cpu", cpu_count=1, threads=1, load_average=(0.0, 0.0, 0.0),
                  load_average_end=(0.0, 0.0, 0.0), torch="", git_commit=None, ceilings=ceilings)
    table = harness.format_table(dict(header=header, cases=[result]))
    assert "% HBM" in table and "% matmul" in table and "measured ceilings" in table
    assert set(result["model"]) == {"fwd", "fwd_bwd"} and "model ms" in table


def test_perf_model_covers_every_gpu_case(capsys):
    """The static model prints a bound for every launch of every GPU case of the default and full
    sizes, from the built module's register counts where it has sm_90 code, else the recorded ones."""
    from xlstm_cuda.bench import perf_model

    assert perf_model.main(["--preset", "full"]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATES" in out
    for name, params in perf_model._gpu_cases("full"):
        estimate = perf_model.case_estimate(name, params)
        assert estimate is not None, name
        for phase in ("fwd", "fwd_bwd"):
            assert 0 < estimate[phase] < 10 and estimate[f"{phase}_launches"], (name, params, phase)
            assert all(launch["blocks_per_sm"] >= 1 for launch in estimate[f"{phase}_launches"])
    step = perf_model.case_estimate("mlstm_step", dict(B=1, NH=8, DHQK=256, DHV=512))["fwd_launches"][0]
    assert step["blocks"] == 128 and step["kernel"] == "mlstm_step_fwd"


def test_perf_model_reads_registers_from_cuobjdump(monkeypatch):
    """module_resources parses cuobjdump -res-usage's listing (fed a made-up one here)."""
    from xlstm_cuda.bench import perf_model

    listing = ("Resource usage:\n Common:\n  GLOBAL:0\n Function _ZN5xlstm21mlstm_step_fwd_kernelIN3c108BFloat16ELi4EEEvNS_"
               "15MlstmStepParamsIT_fEE:\n  REG:72 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:640 TEXTURE:0 SURFACE:0\n")
    monkeypatch.setattr(perf_model, "_cuobjdump", lambda: "cuobjdump")
    monkeypatch.setattr(perf_model.subprocess, "run",
                        lambda *args, **kwargs: type("Done", (), dict(stdout=listing))())
    resources = perf_model.module_resources()
    assert resources["mlstm_step_fwd"].registers == 72
    assert resources["mlstm_step_bwd"] == perf_model.RESOURCES["mlstm_step_bwd"]
