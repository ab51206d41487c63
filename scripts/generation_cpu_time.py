"""Generation at issue #13's CPU size by CPU time (time.process_time, one thread, best of 5): the
models of xlstm_cuda/bench/cases_models.py (embedding 128, 4 heads, vocab 256, 4 blocks with
slstm_at=[1], B=8, a 256-token prompt, 64 new tokens, greedy), ours with the layers' fused CPU
step ops and with the composed ops (layers.fused_step_applies switched off), and the reference
package's step loop once. A measurement, not a test; run without the sanitizer runtime:
    PYTHONPATH=. python3 scripts/generation_cpu_time.py"""
import time

import torch

import xlstm_cuda
from xlstm_cuda import layers
from xlstm_cuda.bench.cases_models import model_config, reference_generate, reference_model


def best_of(fn, repeats=5) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    reference, why = reference_model(model_config(128, 4, 256, 4, (1,), 256, cpu), cpu, torch.float32)
    if reference is None:
        raise SystemExit(f"the reference package's model: {why}")
    ours = xlstm_cuda.xLSTMLMModel.from_reference(reference).eval()
    idx = torch.randint(0, 256, (8, 256))
    fused = layers.fused_step_applies
    tokens = {}
    with torch.no_grad():
        logits, state = ours.last_logits(idx)
        token = logits.argmax(-1)
        for label, applies in (("composed ops", lambda *args: False), ("fused step ops", fused)):
            layers.fused_step_applies = applies
            tokens[label] = ours.generate(idx, 64, temperature=0)
            generate = best_of(lambda: ours.generate(idx, 64, temperature=0))
            step = best_of(lambda: [ours.step(token, state) for _ in range(20)]) / 20
            prefill = best_of(lambda: ours.last_logits(idx))
            print(f"{label}: generate {generate * 1e3:.1f} ms, LM step {step * 1e3:.3f} ms, "
                  f"prefill {prefill * 1e3:.1f} ms")
        layers.fused_step_applies = fused
        start = time.process_time()
        reference_tokens = reference_generate(reference, 64)(idx)
        print(f"reference step loop: {(time.process_time() - start) * 1e3:.0f} ms")
    print("same tokens (composed, fused, reference):",
          torch.equal(tokens["composed ops"], tokens["fused step ops"]),
          torch.equal(tokens["fused step ops"], reference_tokens))


if __name__ == "__main__":
    main()
