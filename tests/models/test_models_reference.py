"""Our models against the reference package (xlstm 2.0.6) through from_reference: outputs and
gradients of mixed stacks, configs built from theirs, initialisation and weight-decay groups."""
import dataclasses

import pytest
import torch

from conftest import generator, randn, rel_err
from model_helpers import reference_lm, reference_lm_config, token_ids
from xlstm_cuda import xLSTMBlockStack, xLSTMLMModel, xLSTMLMModelConfig
from xlstm_cuda.models.reference import lm_tensors, stack_tensors

CASES = {
    # a mixed stack, several heads, FFN: the acceptance case
    "mixed": dict(embedding_dim=32, num_heads=2, num_blocks=4, slstm_at=(1, 2)),
    # tied weights, four sLSTM heads of 12 (not a power of two), two mLSTM heads, biases
    "tied-bias": dict(embedding_dim=48, num_heads=2, slstm_heads=4, num_blocks=3, slstm_at=(0,), tie_weights=True,
                      bias=True),
    # sLSTM without conv or FFN, a non-default mLSTM projection factor
    # one head (the layer once missed the head axis for a single head)
    "one-head": dict(embedding_dim=16, num_heads=1, num_blocks=2, slstm_at=(1,)),
    "plain": dict(embedding_dim=24, num_heads=4, slstm_heads=3, num_blocks=3, slstm_at=(2,), conv=0, feedforward=False,
                  proj_factor=1.5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lm_outputs_and_gradients_equal_reference(case):
    """Float32 logits within 1e-5 of theirs. Gradients against theirs computed in float64, at the
    spec's float32 bound: 1e-4, or twice their own float32 gradients' error where that is larger
    (sums such as a bias's gradient cancel; their rounding, and ours, varies with the thread
    count's reduction order)."""
    gen = generator("lm-reference", case)
    reference = reference_lm(gen, vocab_size=41, **CASES[case])
    ours = xLSTMLMModel.from_reference(reference)
    idx = token_ids(gen, 3, 13, 41)
    logits_ref, logits = reference(idx), ours(idx)
    assert logits.shape == logits_ref.shape == (3, 13, 41)
    assert rel_err(logits, logits_ref) < 1e-5
    upstream = randn(gen, *logits.shape)
    (logits * upstream).sum().backward()
    (logits_ref * upstream).sum().backward()
    ref_grads32 = lm_tensors(reference, lambda p: p.grad.clone(), offset=False)
    reference.zero_grad()
    reference.double()
    (reference(idx) * upstream.double()).sum().backward()
    ref_grads = lm_tensors(reference, lambda p: p.grad, offset=False)
    for name, param in ours.named_parameters():
        bound = max(1e-4, 2 * rel_err(ref_grads32[name], ref_grads[name]))
        assert rel_err(param.grad, ref_grads[name]) < bound, name


def test_stack_from_reference_equals_reference_and_any_length():
    from xlstm.xlstm_block_stack import xLSTMBlockStack as ReferenceStack

    gen = generator("stack-reference")
    config = reference_lm_config(embedding_dim=32, num_heads=4, num_blocks=3, slstm_at=(0,), context_length=20)
    reference = ReferenceStack(config)
    reference.reset_parameters()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(randn(gen, *p.shape, scale=0.2))
    ours = xLSTMBlockStack.from_reference(reference.eval())
    x = randn(gen, 2, 20, 32)
    assert rel_err(ours(x), reference(x)) < 1e-5
    # The reference's context_length is a mask size there; not a limit here.
    assert ours(randn(gen, 2, 45, 32)).shape == (2, 45, 32)
    converted = stack_tensors(reference, lambda p: p.detach())
    assert set(converted) == set(ours.state_dict())


def test_configs_from_reference_dataclasses_and_dicts():
    from xlstm.xlstm_lm_model import xLSTMLMModel as ReferenceLM

    reference_config = reference_lm_config(embedding_dim=64, num_heads=4, num_blocks=5, slstm_at=(1, 3))
    from_dataclass = xLSTMLMModelConfig.from_dict(reference_config)
    from_dict = xLSTMLMModelConfig.from_dict(dataclasses.asdict(reference_config))
    assert from_dataclass == from_dict and from_dict.block_map == [0, 1, 0, 1, 0]
    assert from_dict.slstm_block.feedforward._proj_up_dim == 128  # 1.3 * 64 rounded up to 64
    assert from_dict.mlstm_block.mlstm._inner_embedding_dim == 128
    # The shape of a YAML file as the reference's README writes it (defaults left out).
    yaml_like = {"mlstm_block": {"mlstm": {"conv1d_kernel_size": 4, "qkv_proj_blocksize": 4, "num_heads": 4}},
                 "slstm_block": {"slstm": {"backend": "cuda", "num_heads": 4, "conv1d_kernel_size": 4,
                                           "bias_init": "powerlaw_blockdependent"},
                                 "feedforward": {"proj_factor": 1.3, "act_fn": "gelu"}},
                 "context_length": 256, "num_blocks": 7, "embedding_dim": 128, "slstm_at": [1], "vocab_size": 50}
    ours = xLSTMLMModel(yaml_like)
    theirs = ReferenceLM(reference_lm_config(embedding_dim=128, num_heads=4, num_blocks=7, slstm_at=(1,),
                                             vocab_size=50, context_length=256))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert xLSTMLMModelConfig.from_dict(ours.config.to_dict()) == ours.config


def test_bad_configs_name_the_field():
    base = {"mlstm_block": {}, "slstm_block": {}, "num_blocks": 2, "embedding_dim": 32, "vocab_size": 10}
    with pytest.raises(ValueError, match="unknown field.*num_block"):
        xLSTMLMModelConfig.from_dict({**base, "num_block": 3})
    with pytest.raises(ValueError, match="slstm_at"):
        xLSTMLMModelConfig.from_dict({**base, "slstm_at": [2]})
    with pytest.raises(ValueError, match="vocab_size"):
        xLSTMLMModelConfig.from_dict({**base, "vocab_size": -1})
    with pytest.raises(ValueError, match="give mlstm_block, slstm_block or both"):
        xLSTMLMModelConfig(num_blocks=2, vocab_size=10)
    assert xLSTMLMModelConfig(slstm_block={}, num_blocks=2, vocab_size=10).slstm_at == [0, 1]  # as the reference
    with pytest.raises(ValueError, match="gradient_recurrent_clipval"):
        xLSTMLMModelConfig.from_dict({**base, "slstm_block": {"slstm": {"gradient_recurrent_clipval": 1.0}}})
    with pytest.raises(ValueError, match="act_fn"):
        xLSTMLMModelConfig.from_dict({**base, "slstm_block": {"feedforward": {"act_fn": "tanhh"}}})
    with pytest.raises(ValueError, match="not divisible"):
        xLSTMLMModel({**base, "slstm_at": [1], "slstm_block": {"slstm": {"num_heads": 5}}})
    with pytest.raises(TypeError, match="from_reference"):
        xLSTMLMModel.from_reference(torch.nn.Linear(2, 2))


def test_initialisation_matches_reference():
    """Fresh models of one config: the deterministic parameters equal, the random ones alike in spread."""
    from xlstm.xlstm_lm_model import xLSTMLMModel as ReferenceLM

    torch.manual_seed(0)
    config = reference_lm_config(embedding_dim=64, num_heads=4, num_blocks=4, slstm_at=(1, 3), vocab_size=300)
    reference = ReferenceLM(config)
    reference.reset_parameters()
    theirs = lm_tensors(reference, lambda p: p.detach())
    ours = xLSTMLMModel(xLSTMLMModelConfig.from_dict(config))
    for name, param in ours.state_dict().items():
        ref = theirs[name]
        if ref.std() == 0 or name.endswith((".b", "gates.bias")):  # constants, the forget-gate inits
            if name.endswith("gates.bias"):  # input-gate biases are random: compare the forget gates
                param, ref = param[4:], ref[4:]
            torch.testing.assert_close(param, ref, msg=name)
        else:
            assert 0.8 < (param.std() / ref.std()).item() < 1.25, name
            assert abs(param.mean().item()) < 3 * ref.std().item() / ref.numel() ** 0.5 + 1e-3, name


@pytest.mark.parametrize("decay_embedding", [False, True])
def test_weight_decay_groups_match_reference(decay_embedding):
    from xlstm.xlstm_lm_model import xLSTMLMModel as ReferenceLM

    config = reference_lm_config(num_blocks=3, slstm_at=(1,), bias=True)
    config.weight_decay_on_embedding = decay_embedding
    reference = ReferenceLM(config)
    ours = xLSTMLMModel.from_reference(reference)
    ref_decay, _ = reference.get_weight_decay_optim_groups()
    ref_decay = {id(p) for p in ref_decay}
    # Each of our parameters converts from reference parameters; mark theirs by group and convert.
    marks = lm_tensors(reference, lambda p: torch.full(p.shape, float(id(p) in ref_decay)), offset=False)
    decay, no_decay = ours.get_weight_decay_optim_group_param_names()
    assert sorted(decay + no_decay) == sorted(n for n, _ in ours.named_parameters())
    for name in decay:
        assert bool((marks[name] == 1).all()), name
    for name in no_decay:
        assert bool((marks[name] == 0).all()), name
    assert ("token_embedding.weight" in decay) == decay_embedding
