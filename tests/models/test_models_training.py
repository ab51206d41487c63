"""Training the LM: torch.compile(fullgraph=True) of forward + backward, bf16 autocast on the CPU,
gradient checkpointing per block."""
import torch
import torch.nn.functional as F

from conftest import generator, rel_err
from model_helpers import small_lm, token_ids


def lm_loss(model, idx):
    logits = model(idx[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1).float(), idx[:, 1:].flatten())


def gradients(model, idx, loss_fn=lm_loss):
    model.zero_grad()
    loss = loss_fn(model, idx)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_compiled_forward_backward_equals_eager():
    """One mLSTM and one sLSTM block (compiling is slow on two cores), compiled afresh: Inductor's
    on-disk caches do not key on the ops' fake implementations."""
    gen = generator("lm-compile")
    model = small_lm(gen, num_blocks=2, slstm_at=(1,), embedding_dim=16).train()
    idx = token_ids(gen, 2, 8, 29)
    loss_eager, grads_eager = gradients(model, idx)
    with torch._inductor.config.patch(force_disable_caches=True):
        compiled = torch.compile(lm_loss, fullgraph=True)
        loss_compiled, grads_compiled = gradients(model, idx, compiled)
    torch.testing.assert_close(loss_compiled, loss_eager, rtol=1e-5, atol=1e-6)
    for name, grad in grads_eager.items():
        assert rel_err(grads_compiled[name], grad) < 1e-4, name


def test_bf16_autocast_on_cpu():
    gen = generator("lm-autocast")
    model = small_lm(gen).train()
    idx = token_ids(gen, 2, 9, 29)
    loss, grads = gradients(model, idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.zero_grad()
        logits = model(idx[:, :-1])
        assert logits.dtype == torch.bfloat16
        loss_bf16 = F.cross_entropy(logits.flatten(0, 1).float(), idx[:, 1:].flatten())
    loss_bf16.backward()
    assert abs(loss_bf16.item() - loss.item()) < 2e-2 * loss.item()
    # bf16 rounds each activation to 3 significant digits: the gradient agrees in direction, each
    # tensor's loosely (a small one, a sum that cancels, to tens of percent).
    for name, param in model.named_parameters():
        assert param.grad.dtype == torch.float32 and torch.isfinite(param.grad).all(), name
        assert rel_err(param.grad, grads[name]) < 0.5, name
    flat = torch.cat([p.grad.flatten() for p in model.parameters()])
    flat_fp32 = torch.cat([grads[n].flatten() for n, _ in model.named_parameters()])
    assert F.cosine_similarity(flat, flat_fp32, dim=0) > 0.98


def test_gradient_checkpointing_gives_the_same_gradients():
    gen = generator("lm-checkpointing")
    model = small_lm(gen, num_blocks=3, slstm_at=(0, 2)).train()
    idx = token_ids(gen, 2, 9, 29)
    loss, grads = gradients(model, idx)
    model.set_gradient_checkpointing(True)
    loss_ckpt, grads_ckpt = gradients(model, idx)
    torch.testing.assert_close(loss_ckpt, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-6, atol=1e-7, msg=name)


def test_a_few_optimiser_steps_lower_the_loss():
    gen = generator("lm-optimise")
    model = small_lm(num_blocks=2).train()
    decay, no_decay = model.get_weight_decay_optim_groups()
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-2)
    idx = token_ids(gen, 4, 16, 29)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = lm_loss(model, idx)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
