"""One typed state through forward and step: token-by-token step equals forward, a state handed
from one forward to the next equals one forward over both segments, any S >= 1, detach for
truncated back-propagation through time, clear errors for a state that does not fit."""
import pytest
import torch

from conftest import generator, randn, rel_err
from model_helpers import small_lm, token_ids
from xlstm_cuda import BlockState, xLSTMBlockStack, xLSTMBlockStackConfig, xLSTMState


def test_step_token_by_token_equals_forward():
    gen = generator("lm-step")
    model = small_lm(gen, num_blocks=4, slstm_at=(1, 2))
    idx = token_ids(gen, 3, 11, 29)
    logits, state = model(idx, return_state=True)
    step_state, outs = None, []
    for t in range(idx.shape[1]):
        out, step_state = model.step(idx[:, t:t + 1], step_state)  # (B, 1) as the reference takes it
        assert out.shape == (3, 1, 29)
        outs.append(out[:, 0])
    assert rel_err(torch.stack(outs, 1), logits) < 1e-5
    for i in range(4):
        for a, b in zip(step_state[i].cell, state[i].cell):
            assert rel_err(a, b) < 1e-5
        torch.testing.assert_close(step_state[i].conv, state[i].conv)
    out, _ = model.step(idx[:, 0])  # (B,) ids give (B, V) logits
    assert out.shape == (3, 29)


@pytest.mark.parametrize("split", [1, 5, 9])
def test_state_handover_between_forwards(split):
    gen = generator("lm-handover", split)
    model = small_lm(gen)
    idx = token_ids(gen, 2, 10, 29)
    whole, whole_state = model(idx, return_state=True)
    first, state = model(idx[:, :split], return_state=True)
    second, state = model(idx[:, split:], state, return_state=True)
    assert rel_err(torch.cat([first, second], 1), whole) < 1e-5
    for i in whole_state.blocks:
        for a, b in zip(state[i].cell, whole_state[i].cell):
            assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize("length", [1, 2, 7, 130])
def test_any_sequence_length(length):
    gen = generator("lm-length", length)
    model = small_lm(gen, context_length=8)  # context_length is the reference's mask size, not a limit
    idx = token_ids(gen, 2, length, 29)
    logits = model(idx)
    assert logits.shape == (2, length, 29) and torch.isfinite(logits).all()
    if length > 1:  # causal: later tokens do not change earlier outputs
        changed = idx.clone()
        changed[:, -1] = (changed[:, -1] + 1) % 29
        torch.testing.assert_close(model(changed)[:, :-1], logits[:, :-1])


def test_stack_forward_and_step_on_vectors():
    gen = generator("stack-step")
    config = xLSTMBlockStackConfig(mlstm_block={"mlstm": {"num_heads": 2, "chunk_size": 4}},
                                   slstm_block={"slstm": {"num_heads": 4, "conv1d_kernel_size": 0},
                                                "feedforward": None},
                                   num_blocks=3, slstm_at=[0], embedding_dim=16)
    stack = xLSTMBlockStack(config).eval()
    x = randn(gen, 2, 6, 16)
    y = stack(x)
    assert isinstance(y, torch.Tensor)  # the output alone by default, as the reference returns it
    state, outs = None, []
    for t in range(6):
        y_t, state = stack.step(x[:, t], state)
        outs.append(y_t)
    assert state[0].conv is None  # an sLSTM layer without conv has no conv buffer
    assert rel_err(torch.stack(outs, 1), y) < 1e-5
    y_t, _ = stack.step(x[:, :1])
    assert y_t.shape == (2, 1, 16)


def test_truncated_backpropagation_through_time():
    """Training on segments with the state detached in between: the gradient of the second
    segment's loss stops at the segment boundary, and equals the gradient of the second segment
    run from a constant state."""
    gen = generator("lm-tbptt")
    model = small_lm(gen).train()
    idx = token_ids(gen, 2, 12, 29)
    _, state = model(idx[:, :6], return_state=True)
    state = state.detach()
    assert all(not t.requires_grad for b in state.blocks.values() for t in b.cell)
    logits = model(idx[:, 6:], state)
    logits.logsumexp(-1).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    constant = state.map(lambda t: t.clone())
    model(idx[:, 6:], constant).logsumexp(-1).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)
    # Without detach, the gradient reaches the first segment's computation too.
    model.zero_grad()
    _, live = model(idx[:, :6], return_state=True)
    model(idx[:, 6:], live).logsumexp(-1).sum().backward()
    embedding_rows = model.token_embedding.weight.grad.abs().sum(-1)
    assert embedding_rows[idx[:, :6].unique()].min() > 0


def test_state_errors_name_the_problem():
    gen = generator("lm-state-errors")
    model = small_lm(gen)
    idx = token_ids(gen, 2, 4, 29)
    _, state = model(idx, return_state=True)
    with pytest.raises(ValueError, match=r"block 0 .*state.conv has shape \(2, 3, 64\), expected \(3, 3, 64\)"):
        model(token_ids(gen, 3, 4, 29), state)  # batch 3, state of batch 2
    with pytest.raises(ValueError, match="state has blocks"):
        model(idx, xLSTMState({0: state[0]}))
    with pytest.raises(TypeError, match="xLSTMState"):
        model(idx, {"block_0": {}})
    swapped = xLSTMState({0: state[1], 1: state[0], 2: state[2]})
    with pytest.raises(ValueError, match="block 0"):
        model(idx, swapped)
    with pytest.raises(TypeError, match="BlockState"):
        model(idx, xLSTMState({0: (1, 2), 1: state[1], 2: state[2]}))
    with pytest.raises(ValueError, match="vocabulary"):
        model(torch.full((2, 3), 29))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        model(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="one token"):
        model.step(idx)
    assert isinstance(state[0], BlockState) and state.batch_size == 2
