"""xLSTMLarge (xLSTM 7B) against transformers' xLSTMForCausalLM and the reference xlstm.xlstm_large
(their native PyTorch backends, float32), on random weights: logits, greedy generations, padded
batches, checkpoints (both layouts, sharded, and every error path), the weight modes and the
transformers integration."""
import copy
import json
from dataclasses import asdict

import pytest
import torch
import transformers
import yaml
from safetensors.torch import load_file, save_file
from xlstm.xlstm_large import model as reference

from conftest import generator, rel_err
from xlstm_cuda import ops
from xlstm_cuda.integrations.transformers import (OpsBackend, state_from_cache, state_to_cache, to_transformers, to_xlstm_large,
                                                  use_xlstm_cuda_kernels)
from xlstm_cuda.models.xlstm_large import xLSTMLarge, xLSTMLargeConfig, xLSTMLargeState, sample_token
from xlstm_cuda.models.xlstm_large_checkpoint import convert_weight_mode

TOL = 1e-4


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Weights drawn afresh (the initialisations leave gates and some projections at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if p.dim() > 1 else 1.0
            p.copy_(torch.randn(p.shape, generator=gen) * scale + (1.0 if "norm" in name else 0.0))


@pytest.fixture(scope="module")
def hf_model():
    config = transformers.xLSTMConfig(vocab_size=97, hidden_size=128, num_hidden_layers=2, num_heads=4,
                                      autocast_kernel_dtype="float32", eos_token_id=None, pad_token_id=None,
                                      bos_token_id=None)
    model = transformers.xLSTMForCausalLM(config).eval()
    randomize_(model, 1)
    return model


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    hf_model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def ours(hf_dir):
    return xLSTMLarge.from_pretrained(hf_dir)


@pytest.fixture(scope="module")
def ref_model():
    """The reference package's model, odd sizes (D 96, 3 heads, head dims 16 and 32), biases on."""
    config = reference.xLSTMLargeConfig(
        embedding_dim=96, num_heads=3, num_blocks=2, vocab_size=101, use_bias=True, chunk_size=16,
        chunkwise_kernel="chunkwise--native_autograd", sequence_kernel="native_sequence__native",
        step_kernel="native", mode="inference", return_last_states=True, autocast_kernel_dtype="float32")
    model = reference.xLSTMLarge(config).eval()
    randomize_(model, 2)
    return model


@pytest.fixture(scope="module")
def ref_dir(ref_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref")
    (path / "config.yaml").write_text(yaml.safe_dump(asdict(ref_model.config)))
    save_file({k: v.contiguous() for k, v in ref_model.state_dict().items()}, str(path / "model.safetensors"))
    return path


def ids(seed, B, S, V):
    return torch.randint(0, V, (B, S), generator=generator("ids", seed, B, S))


@pytest.mark.parametrize("S", [1, 17, 64, 200])
def test_logits_match_transformers(hf_model, ours, S):
    x = ids("hf", 2, S, 97)
    with torch.no_grad():
        expected = hf_model(x).logits
    logits, state = ours(x)
    assert logits.dtype == torch.float32 and logits.shape == (2, S, 97)
    assert rel_err(logits, expected) < TOL
    assert all(t.dtype == torch.float32 for cell in state.cells for t in cell)


def test_greedy_matches_transformers(hf_model, ours):
    x = ids("greedy", 1, 11, 97)
    with torch.no_grad():
        expected = hf_model.generate(x, max_new_tokens=32, do_sample=False)
    assert torch.equal(ours.generate(x, max_new_tokens=32, temperature=0), expected)


@pytest.mark.parametrize("S", [1, 17, 64, 200])
def test_logits_match_reference(ref_model, ref_dir, S):
    ours = xLSTMLarge.from_pretrained(ref_dir)
    assert ours.config.use_bias and ours.config.chunk_size == 16
    x = ids("ref", 3, S, 101)
    with torch.no_grad():
        expected, _ = ref_model(x)
    assert rel_err(ours(x)[0], expected) < TOL


def test_sharded_reference_checkpoint(ref_model, ref_dir, tmp_path):
    """The reference's shards: model_0.safetensors, model_1.safetensors, ..."""
    (tmp_path / "config.yaml").write_text((ref_dir / "config.yaml").read_text())
    tensors = load_file(str(ref_dir / "model.safetensors"))
    names = sorted(tensors)
    for index, part in enumerate((names[:10], names[10:])):
        save_file({name: tensors[name] for name in part}, str(tmp_path / f"model_{index}.safetensors"))
    x = ids("ref-shards", 2, 9, 101)
    with torch.no_grad():
        assert rel_err(xLSTMLarge.from_pretrained(tmp_path)(x)[0], ref_model(x)[0]) < TOL


def test_greedy_matches_reference(ref_model, ref_dir):
    x = ids("ref-greedy", 2, 23, 101)
    with torch.no_grad():
        expected, _ = ref_model.generate(x, max_length=32)
    out = xLSTMLarge.from_pretrained(ref_dir).generate(x, max_new_tokens=32, temperature=0)
    assert torch.equal(out[:, 23:], expected)


def test_padded_batch_rows_match_prompts_alone(ours):
    lengths = (5, 17, 70, 1)
    prompts = [ids(("pad", n), 1, n, 97)[0] for n in lengths]
    S = max(lengths)
    batch = torch.full((len(prompts), S), 3, dtype=torch.long)
    mask = torch.zeros(len(prompts), S, dtype=torch.long)
    for row, p in enumerate(prompts):
        batch[row, S - len(p):], mask[row, S - len(p):] = p, 1
    logits, _ = ours(batch, attention_mask=mask)
    out = ours.generate(batch, attention_mask=mask, max_new_tokens=12, temperature=0)
    for row, p in enumerate(prompts):
        alone, _ = ours(p[None])
        assert rel_err(logits[row, S - len(p):], alone[0]) < TOL
        assert torch.equal(out[row, S:], ours.generate(p[None], max_new_tokens=12, temperature=0)[0, len(p):])


def test_chunked_prefill_matches_one_pass(hf_dir, ours):
    x = ids("chunked", 2, 50, 97)
    chunked = xLSTMLarge.from_pretrained(hf_dir)
    chunked.config.max_inference_chunksize = 16
    full, state = ours(x)
    logits, chunked_state = chunked(x)
    assert rel_err(logits, full) < TOL
    last, _ = chunked(x, last_logits_only=True)
    assert last.shape == (2, 1, 97) and rel_err(last, full[:, -1:]) < TOL
    for a, b in zip(chunked_state.cells, state.cells):
        assert all(rel_err(s, t) < TOL for s, t in zip(a, b))


def test_prefill_then_steps_match_one_pass(ours):
    x = ids("steps", 2, 40, 97)
    full, _ = ours(x)
    logits, state = ours(x[:, :33])
    parts = [logits]
    for t in range(33, 40):
        step, state = ours(x[:, t:t + 1], state)
        parts.append(step)
    assert rel_err(torch.cat(parts, 1), full) < TOL


def test_fused_weights_match_single(hf_dir, ours):
    x = ids("fused", 2, 30, 97)
    fused = xLSTMLarge.from_pretrained(hf_dir, weight_mode="fused")
    assert fused.config.weight_mode == "fused" and hasattr(fused.backbone.blocks[0].mlstm_layer, "qkv_opreact")
    assert rel_err(fused(x)[0], ours(x)[0]) < 1e-5
    assert rel_err(ours.with_weight_mode("fused")(x)[0], ours(x)[0]) < 1e-5
    assert torch.equal(fused.generate(x, max_new_tokens=6, temperature=0), ours.generate(x, max_new_tokens=6, temperature=0))
    back = fused.with_weight_mode("single").state_dict()
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(ValueError, match="weight_mode"):
        convert_weight_mode(ours.state_dict(), ours.config, "half")


def test_sampling(ours):
    x = ids("sample", 3, 9, 97)
    greedy = ours.generate(x, max_new_tokens=8, temperature=0)
    assert torch.equal(ours.generate(x, max_new_tokens=8, top_k=1), greedy)
    assert torch.equal(ours.generate(x, max_new_tokens=8, top_p=1e-6, temperature=2.0), greedy)
    a = ours.generate(x, max_new_tokens=8, temperature=1.5, top_k=20, top_p=0.9, generator=torch.Generator().manual_seed(5))
    b = ours.generate(x, max_new_tokens=8, temperature=1.5, top_k=20, top_p=0.9, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (3, 17)
    logits = torch.randn(4, 97, generator=generator("top-k"))
    allowed = logits.topk(5, dim=-1).indices
    for seed in range(5):
        token = sample_token(logits, 1.0, 5, None, torch.Generator().manual_seed(seed))
        assert (allowed == token[:, None]).any(-1).all()


def test_stop_tokens_and_streamer(ours):
    x = ids("eos", 2, 7, 97)
    free = ours.generate(x, max_new_tokens=10, temperature=0)
    stop = int(free[0, 9])  # row 0's third token
    seen = []
    out = ours.generate(x, max_new_tokens=10, temperature=0, eos_token_id=[stop], pad_token_id=0, streamer=seen.append)
    first = {row: next((t for t in range(7, free.shape[1]) if free[row, t] == stop), None) for row in (0, 1)}
    end = max(t if t is not None else free.shape[1] - 1 for t in first.values()) + 1
    assert out.shape[1] == end and len(seen) == end - 7
    assert torch.equal(torch.stack(seen, 1), out[:, 7:])
    for row, t in first.items():
        stop_at = t + 1 if t is not None else end
        assert torch.equal(out[row, :stop_at], free[row, :stop_at]) and (out[row, stop_at:] == 0).all()

    class Streamer:  # transformers' streamer interface
        def __init__(self):
            self.calls = []

        def put(self, value):
            self.calls.append(value)

        def end(self):
            self.calls.append("end")

    streamer = Streamer()
    out = ours.generate(x[:1], max_new_tokens=3, temperature=0, streamer=streamer)
    assert torch.equal(streamer.calls[0], x[:1]) and streamer.calls[-1] == "end" and len(streamer.calls) == 5


def test_bfloat16_weights_float32_states(hf_model, hf_dir, ours):
    """bf16 weights, float32 states: no further from float32 than transformers in bf16 (2x margin)."""
    x = ids("bf16", 2, 37, 97)
    model = xLSTMLarge.from_pretrained(hf_dir, dtype=torch.bfloat16)
    assert model.lm_head.weight.dtype == torch.bfloat16
    logits, state = model(x)
    assert all(t.dtype == torch.float32 for cell in state.cells for t in cell)
    with torch.no_grad():
        theirs = copy.deepcopy(hf_model).to(torch.bfloat16)(x).logits
    exact = ours(x)[0]
    assert logits.dtype == torch.float32 and rel_err(logits, exact) < 2 * rel_err(theirs, exact)
    assert model.generate(x, max_new_tokens=3, temperature=0).shape == (2, 40)


# ---- checkpoints --------------------------------------------------------------------------------

def test_save_pretrained_loads_in_transformers(ours, tmp_path):
    ours.save_pretrained(tmp_path / "out")
    hf = transformers.xLSTMForCausalLM.from_pretrained(tmp_path / "out").eval()
    x = ids("save", 2, 20, 97)
    with torch.no_grad():
        assert rel_err(hf(x).logits, ours(x)[0]) < TOL
    with pytest.raises(FileExistsError, match="not empty"):
        ours.save_pretrained(tmp_path / "out")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    ours.save_pretrained(tmp_path / "out", overwrite=True, max_shard_bytes=100_000)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "out" / "model.safetensors").exists()
    reloaded = xLSTMLarge.from_pretrained(tmp_path / "out")
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in ours.state_dict().items())


def test_sharded_transformers_checkpoint(hf_model, ours, tmp_path):
    hf_model.save_pretrained(tmp_path, max_shard_size="300KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    loaded = xLSTMLarge.from_pretrained(tmp_path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in ours.state_dict().items())
    (tmp_path / shards[1]).unlink()
    with pytest.raises(FileNotFoundError, match=shards[1]):
        xLSTMLarge.from_pretrained(tmp_path)


def checkpoint_copy(src, dst, edit):
    """A copy of the checkpoint in src whose tensors `edit` changes (in place)."""
    dst.mkdir()
    (dst / "config.json").write_text((src / "config.json").read_text())
    tensors = load_file(str(src / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


def test_checkpoint_errors(hf_dir, tmp_path):
    name = "backbone.blocks.1.mlstm_layer.q.weight"

    def wrong_shape(t):
        t[name] = t[name][:-1].clone()

    with pytest.raises(ValueError, match=rf"model.safetensors: tensor '{name}' has shape \[63, 128\], expected \[64, 128\]"):
        xLSTMLarge.from_pretrained(checkpoint_copy(hf_dir, tmp_path / "a", wrong_shape))
    with pytest.raises(ValueError, match="model.safetensors: unknown tensor 'backbone.extra'"):
        xLSTMLarge.from_pretrained(checkpoint_copy(hf_dir, tmp_path / "b", lambda t: t.update({"backbone.extra": torch.ones(2)})))
    with pytest.raises(KeyError, match=name):
        xLSTMLarge.from_pretrained(checkpoint_copy(hf_dir, tmp_path / "c", lambda t: t.pop(name)))
    with pytest.raises(ValueError, match="dtype must be a floating-point"):
        xLSTMLarge.from_pretrained(hf_dir, dtype=torch.int64)
    with pytest.raises(FileNotFoundError, match="neither config.json"):
        xLSTMLarge.from_pretrained(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.json").write_text((hf_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no weights"):
        xLSTMLarge.from_pretrained(tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.yaml").write_text(yaml.safe_dump({"embedding_dim": 8, "num_heads": 2, "num_blocks": 1,
                                                                "vocab_size": 5, "colour": "red"}))
    with pytest.raises(ValueError, match=r"config.yaml: unknown xLSTMLargeConfig field\(s\) \['colour'\]"):
        xLSTMLarge.from_pretrained(tmp_path / "e")


# ---- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, match", [
    (dict(num_heads=3), "qk_dim = 16 .* not divisible into num_heads = 3"),
    (dict(weight_mode="half"), "weight_mode"),
    (dict(embedding_dim=0), "embedding_dim must be a positive int"),
    (dict(gate_soft_cap=-1.0), "gate_soft_cap must be positive or None"),
])
def test_config_checks(changes, match):
    with pytest.raises(ValueError, match=match):
        xLSTMLargeConfig(**{**dict(embedding_dim=32, num_heads=4, num_blocks=1, vocab_size=11), **changes})


def test_input_checks(ours):
    x = ids("checks", 2, 5, 97)
    with pytest.raises(ValueError, match="input_ids must be an integer tensor"):
        ours(x.float())
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 97\)"):
        ours(x + 97)
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        ours(x, attention_mask=torch.ones(2, 4))
    with pytest.raises(TypeError, match="state must be an xLSTMLargeState"):
        ours(x, state=[])
    _, state = ours(x)
    with pytest.raises(ValueError, match="block 0's"):
        ours(x[:1], state=state)
    with pytest.raises(ValueError, match="has 1 blocks"):
        ours(x, state=xLSTMLargeState(state.cells[:1]))
    right_padded = torch.ones(2, 5, dtype=torch.long)
    right_padded[0, -1] = 0
    with pytest.raises(ValueError, match="pad on the left"):
        ours.generate(x, attention_mask=right_padded)
    for kwargs, match in [(dict(max_new_tokens=-1), "max_new_tokens"), (dict(temperature=-1.0), "temperature"),
                          (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"), (dict(eos_token_id=97), "eos_token_id"),
                          (dict(streamer=3), "streamer")]:
        with pytest.raises((ValueError, TypeError), match=match):
            ours.generate(x, **kwargs)


# ---- transformers integration -------------------------------------------------------------------

def test_transformers_runs_on_our_ops(hf_model, monkeypatch):
    x = ids("integration", 2, 45, 97)
    patched = use_xlstm_cuda_kernels(copy.deepcopy(hf_model))
    assert all(isinstance(b.mlstm_layer.mlstm_backend, OpsBackend) for b in patched.backbone.blocks)
    assert patched.state_dict().keys() == hf_model.state_dict().keys()
    assert not any(type(m) is torch.nn.Linear for m in patched.modules())
    calls = []
    skinny = ops.skinny_linear
    monkeypatch.setattr(ops, "skinny_linear", lambda *a, **k: calls.append(1) or skinny(*a, **k))
    with torch.no_grad():
        assert rel_err(patched(x).logits, hf_model(x).logits) < TOL
        assert not calls  # 2 x 45 rows: F.linear
        prompt = x[:1, :13]
        assert torch.equal(patched.generate(prompt, max_new_tokens=16, do_sample=False),
                           hf_model.generate(prompt, max_new_tokens=16, do_sample=False))
        assert calls  # the decode steps' products
    with pytest.raises(ValueError, match="no mLSTM layer"):
        use_xlstm_cuda_kernels(torch.nn.Linear(2, 2))


def test_reference_runs_on_our_ops(ref_model):
    x = ids("ref-integration", 2, 21, 101)
    patched = use_xlstm_cuda_kernels(copy.deepcopy(ref_model))
    with torch.no_grad():
        assert rel_err(patched(x)[0], ref_model(x)[0]) < TOL


def test_convert_to_and_from_transformers(hf_model, ours):
    x = ids("convert", 2, 19, 97)
    converted = to_xlstm_large(hf_model)
    assert all(torch.equal(converted.state_dict()[k], v) for k, v in ours.state_dict().items())
    fused = to_xlstm_large(hf_model, weight_mode="fused")
    back = to_transformers(ours).eval()
    with torch.no_grad():
        expected = hf_model(x).logits
        assert rel_err(back(x).logits, expected) < TOL
        assert rel_err(fused(x)[0], expected) < TOL
    with pytest.raises(TypeError, match="expected an xLSTMLarge"):
        to_transformers(hf_model)


def test_states_hand_over_between_transformers_and_ours(hf_model, ours):
    x = ids("cache", 2, 30, 97)
    with torch.no_grad():
        expected = hf_model(x).logits
        cache = hf_model(x[:, :21], use_cache=True).cache
        logits, _ = ours(x[:, 21:], state_from_cache(cache))
        assert rel_err(logits, expected[:, 21:]) < TOL
        _, state = ours(x[:, :21])
        state_to_cache(state, cache)
        assert rel_err(hf_model(x[:, 21:], cache=cache, use_cache=True).logits, expected[:, 21:]) < TOL
    with pytest.raises(TypeError, match="xLSTMCache"):
        state_from_cache(state)


def test_7b_head_dims_match_transformers():
    """One head of the true 7B sizes (DHQK 256, DHV 512) through the whole model."""
    config = transformers.xLSTMConfig(vocab_size=64, hidden_size=512, num_hidden_layers=1, num_heads=1,
                                      autocast_kernel_dtype="float32", eos_token_id=None, pad_token_id=None,
                                      bos_token_id=None)
    hf = transformers.xLSTMForCausalLM(config).eval()
    randomize_(hf, 3)
    ours = to_xlstm_large(hf)
    assert (ours.config.qk_head_dim, ours.config.v_head_dim) == (256, 512)
    x = ids("7b-heads", 1, 70, 64)
    with torch.no_grad():
        assert rel_err(ours(x)[0], hf(x).logits) < TOL


def test_initialisation():
    config = xLSTMLargeConfig(embedding_dim=256, num_heads=4, num_blocks=2, vocab_size=300, v_dim_factor=0.5)
    model = xLSTMLarge(config)
    layer = model.backbone.blocks[1].mlstm_layer
    assert (layer.igate_preact.weight == 0).all() and (layer.igate_preact.bias == -10).all()
    assert torch.equal(layer.fgate_preact.bias, torch.linspace(3.0, 6.0, 4))
    for weight, std in [(model.embedding.weight, (2 / (5 * 256)) ** 0.5), (layer.q.weight, (2 / (5 * 256)) ** 0.5),
                        (layer.out_proj.weight, 2 / 2 / 256 ** 0.5),
                        (model.backbone.blocks[0].ffn.proj_down.weight, 2 / 2 / 704 ** 0.5)]:
        assert abs(weight.std().item() / std - 1) < 0.1
    assert model.lm_head.weight.is_contiguous()  # row-major: what ops.skinny_linear streams
    fused = xLSTMLarge(xLSTMLargeConfig(**{**config.__dict__, "weight_mode": "fused"}))
    bias = fused.backbone.blocks[0].mlstm_layer.ifgate_preact.bias
    assert torch.equal(bias, torch.cat([torch.full((4,), -10.0), torch.linspace(3.0, 6.0, 4)]))
