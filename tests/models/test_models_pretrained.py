"""save_pretrained / from_pretrained: round trips, nothing overwritten unasked, clear errors for
missing, truncated and mismatched files."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import generator
from model_helpers import small_lm, token_ids
from xlstm_cuda import xLSTMBlockStack, xLSTMLMModel


@pytest.mark.parametrize("tie_weights", [False, True])
def test_round_trip(tmp_path, tie_weights):
    gen = generator("pretrained", tie_weights)
    model = small_lm(gen, tie_weights=tie_weights)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = xLSTMLMModel.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config
    idx = token_ids(gen, 2, 7, 29)
    torch.testing.assert_close(loaded(idx), model(idx), rtol=0, atol=0)
    assert (loaded.lm_head.weight is loaded.token_embedding.weight) == tie_weights
    stack = model.xlstm_block_stack
    stack.save_pretrained(tmp_path / "stack")
    x = torch.randn(2, 5, 16, generator=gen)
    torch.testing.assert_close(xLSTMBlockStack.from_pretrained(tmp_path / "stack").eval()(x), stack(x))


def test_refuses_to_overwrite(tmp_path):
    model = small_lm()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(NotADirectoryError):
        model.save_pretrained(tmp_path / "notes.txt")


def saved(tmp_path):
    small_lm(generator("pretrained-errors")).save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_missing_and_corrupt_files_are_named(tmp_path):
    path = saved(tmp_path)
    config = path / "config.json"
    config.write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        xLSTMLMModel.from_pretrained(path)
    config.unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        xLSTMLMModel.from_pretrained(path)
    path = saved(tmp_path / "again")
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        xLSTMLMModel.from_pretrained(path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        xLSTMLMModel.from_pretrained(path)


def test_mismatched_tensors_are_named(tmp_path):
    path = saved(tmp_path)
    weights_file = str(path / "model.safetensors")
    tensors = load_file(weights_file)
    name = "xlstm_block_stack.blocks.1.xlstm.cell.R"
    save_file({**tensors, name: tensors[name][:1].contiguous()}, weights_file)
    with pytest.raises(ValueError, match=f"tensor '{name}' has shape"):
        xLSTMLMModel.from_pretrained(path)
    save_file({k: v for k, v in tensors.items() if k != name}, weights_file)
    with pytest.raises(ValueError, match=f"missing tensors \\['{name}'\\]"):
        xLSTMLMModel.from_pretrained(path)
    save_file({**tensors, "extra": torch.zeros(1)}, weights_file)
    with pytest.raises(ValueError, match="unexpected tensors \\['extra'\\]"):
        xLSTMLMModel.from_pretrained(path)
    document = json.loads((path / "config.json").read_text())
    with pytest.raises(ValueError, match="holds a 'xLSTMLMModel', not a xLSTMBlockStack"):
        xLSTMBlockStack.from_pretrained(path)
    document["config"]["num_blocks"] = 5
    (path / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="config.json: .*slstm_at|missing tensors"):
        xLSTMLMModel.from_pretrained(path)
    document["config"]["bogus"] = 1
    (path / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="config.json: .*unknown field.*bogus"):
        xLSTMLMModel.from_pretrained(path)
