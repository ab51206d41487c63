"""generate: greedy equals argmax decoding by repeated full forwards; sampling options, eos,
reproducibility, constant state size, argument checks."""
import pytest
import torch

from conftest import generator
from model_helpers import small_lm, token_ids
from xlstm_cuda.models import sample_next


def test_greedy_equals_repeated_full_forward():
    gen = generator("generate-greedy")
    model = small_lm(gen, num_blocks=3, slstm_at=(0, 2))
    idx = token_ids(gen, 3, 5, 29)
    out = model.generate(idx, 12, temperature=0)
    expected = idx
    with torch.no_grad():
        for _ in range(12):
            expected = torch.cat([expected, model(expected)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, expected)
    assert torch.equal(model.generate(idx, 12, top_k=1), expected)  # top-k 1 is greedy too
    assert torch.equal(model.generate(idx, 12, top_p=1e-6), expected)  # as is a tiny nucleus


def test_sampling_is_reproducible_and_eos_stops():
    gen = generator("generate-sample")
    model = small_lm(gen)
    idx = token_ids(gen, 4, 3, 29)
    a = model.generate(idx, 20, temperature=1.5, top_k=10, top_p=0.9, generator=torch.Generator().manual_seed(1))
    b = model.generate(idx, 20, temperature=1.5, top_k=10, top_p=0.9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (4, 23)
    eos = int(a[0, 3])  # the first sequence's first new token
    c = model.generate(idx, 20, temperature=1.5, top_k=10, top_p=0.9, eos_token_id=eos,
                       generator=torch.Generator().manual_seed(1))
    assert c[0, 3] == eos and (c[0, 3:] == eos).all()  # padded with eos after it
    for row in c[:, 3:]:
        hits = (row == eos).nonzero()
        if len(hits):
            assert (row[hits[0, 0]:] == eos).all()
    assert model.generate(idx, 0).shape == (4, 3)


def test_sample_next_restricts_to_top_k_and_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    draws = torch.stack([sample_next(logits, 1.0, top_k=2, generator=torch.Generator().manual_seed(s))
                         for s in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1}
    draws = torch.stack([sample_next(logits, 1.0, top_p=0.7, generator=torch.Generator().manual_seed(s))
                         for s in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3


def test_state_size_is_constant_in_the_tokens():
    gen = generator("generate-memory")
    model = small_lm(gen)
    idx = token_ids(gen, 2, 3, 29)

    def state_numel(length):
        _, state = model(token_ids(gen, 2, length, 29), return_state=True)
        for _ in range(3):
            _, state = model.step(idx[:, 0], state)
        return sum(t.numel() for b in state.blocks.values() for t in [b.conv, *b.cell] if t is not None)

    assert state_numel(2) == state_numel(50)


def test_progress_bar_and_argument_errors(capsys):
    model = small_lm(generator("generate-args"))
    idx = torch.zeros(1, 2, dtype=torch.long)
    model.generate(idx, 3, progress=True)
    assert "generate" in capsys.readouterr().err
    for kwargs, match in [(dict(max_new_tokens=-1), "max_new_tokens"), (dict(temperature=-1.0), "temperature"),
                          (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"), (dict(eos_token_id=29), "eos_token_id")]:
        with pytest.raises(ValueError, match=match):
            model.generate(idx, **{"max_new_tokens": 2, **kwargs})
    with pytest.raises(ValueError, match="idx"):
        model.generate(torch.zeros(3, dtype=torch.long), 2)
