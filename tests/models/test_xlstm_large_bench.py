"""The xLSTM 7B architecture benchmark runs end to end on a tiny model; timings are never asserted."""
import json

from xlstm_cuda.bench.__main__ import main
from xlstm_cuda.bench.cases_large import format_shape


def test_large_suite_measures_ours_and_both_baselines(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["--tiny", "--suite", "large", "--device", "cpu", "--threads", "1", "--json", str(path)]) == 0
    (case,) = json.loads(path.read_text())["cases"]
    assert case["fwd"]["tokens_per_s"] > 0 and case["fwd_bwd"] == {"skipped": "no differentiable output"}
    for name in ("transformers (native)", "xlstm reference (native)"):
        assert "fwd" in case["baselines"][name]["ratio"], case["baselines"][name]
    assert "vs transformers (native)" in capsys.readouterr().out


def test_shape_table_has_floors_and_ratios():
    metrics = ("prefill_tokens_per_s", "decode_B1_tokens_per_s")
    result = dict(embedding_dim=8, prompt=4, vocab=11, heads=2, blocks=1, ours_rss_growth_mib_128_tokens=0.0,
                  floors=dict.fromkeys(metrics, 100.0),
                  models={"xlstm_cuda": dict.fromkeys(metrics, 50.0), "transformers (native)": dict.fromkeys(metrics, 10.0)})
    table = format_shape("toy", result)
    assert "| ours / floor | 0.50 | 0.50 |" in table and "| ours / transformers (native) | 5.00 | 5.00 |" in table
    assert "grew 0.0 MiB" in table
