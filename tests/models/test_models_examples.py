"""The examples run end to end with a tiny step count, and the model benchmark suite on tiny sizes
(timings are never asserted)."""
import importlib.util
import json
from pathlib import Path

import pytest

from xlstm_cuda import xLSTMLMModel
from xlstm_cuda.bench.__main__ import main as bench_main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_char_lm_example(tmp_path, capsys):
    char_lm = load_example("char_lm")
    out = tmp_path / "out"
    assert char_lm.main(["--steps", "3", "--eval-every", "2", "--batch-size", "2", "--seq-len", "16",
                         "--embedding-dim", "32", "--num-blocks", "2", "--sample-tokens", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "final loss" in printed and "sample from the reloaded checkpoint" in printed
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert len(json.loads((out / "history.json").read_text())["train"]) == 3
    assert xLSTMLMModel.from_pretrained(out / "checkpoint").config.num_blocks == 2
    assert (out / "sample.txt").read_text().startswith("def ")
    with pytest.raises(SystemExit):  # a second run does not overwrite the first unasked
        char_lm.main(["--steps", "1", "--out", str(out)])
    assert "--overwrite" in capsys.readouterr().err


def test_parity_example(tmp_path, capsys):
    parity = load_example("parity")
    out = tmp_path / "out"
    assert parity.main(["--steps", "2", "--batch-size", "4", "--train-max-len", "4", "--test-lengths", "4", "9",
                        "--test-size", "8", "--embedding-dim", "16", "--num-blocks", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"sLSTM", "mLSTM"} and set(results["sLSTM"]) == {"4", "9"}
    assert all(0 <= acc <= 1 for accs in results.values() for acc in accs.values())
    assert (out / "parity_accuracy.png").read_bytes().startswith(b"\x89PNG")
    assert "accuracy of the parity" in capsys.readouterr().out


def test_model_bench_suite(tmp_path, capsys):
    json_path = tmp_path / "bench.json"
    assert bench_main(["--tiny", "--device", "cpu", "--threads", "1", "--suite", "model", "--json", str(json_path)]) == 0
    report = json.loads(json_path.read_text())
    assert [c["name"] for c in report["cases"]] == ["xLSTMLMModel", "generate"]
    train, generate = report["cases"]
    assert set(train["baselines"]["xlstm"]["ratio"]) == {"fwd", "fwd_bwd"}  # the reference package, same run
    assert set(generate["baselines"]["xlstm"]["ratio"]) == {"fwd"} and "skipped" in generate["fwd_bwd"]
    assert "vs xlstm" in capsys.readouterr().out
