"""PyTorch peer of benches/train_throughput.rs: the same f32 model (exported by the Rust
bench to target/train-bench-smollm2-f32, or target/train-bench-NAME-f32 for
BENCH_TRAIN_MODEL=NAME), the same 4 x 128-token batch (target/train-bench-batch.json),
loss on the answer tokens, backward, clipping at 1.0 and AdamW, on 2 CPU threads; full
fine-tuning, the last 4 blocks only, or LoRA through peft (rank 8, alpha 16, q/k/v/o of
every block, no dropout).

Run after the Rust bench: python benches/peers/torch_train.py [full] [last4] [lora]
"""
import json, os, resource, sys, time

import torch
from transformers import AutoModelForCausalLM

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
root = os.path.join(os.path.dirname(__file__), "..", "..", "target")
batch = json.load(open(os.path.join(root, "train-bench-batch.json")))
tokens = torch.tensor(batch["tokens"])
inputs, labels = tokens[:, :-1], tokens[:, 1:].clone()
for row, start in enumerate(batch["response_start"]):
    labels[row, : start - 1] = -100  # position i predicts token i + 1
steps = 3
name = os.environ.get("BENCH_TRAIN_MODEL", "smollm2-135m-instruct")
folder = "train-bench-smollm2-f32" if name == "smollm2-135m-instruct" else f"train-bench-{name}-f32"

for mode in sys.argv[1:] or ["full", "last4"]:
    model = AutoModelForCausalLM.from_pretrained(
        os.path.join(root, folder), dtype=torch.float32
    )
    model.train()
    layers = len(model.model.layers)
    if mode == "last4":
        for name, p in model.named_parameters():
            # bftembed's last-N mode trains a separate output matrix too (a tied one is
            # the frozen embedding).
            p.requires_grad = (any(name.startswith(f"model.layers.{i}.") for i in range(layers - 4, layers))
                               or name == "model.norm.weight"
                               or (name == "lm_head.weight" and not model.config.tie_word_embeddings))
    if mode == "lora":
        import peft
        model = peft.get_peft_model(model, peft.LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    fwd = bwd = step_t = 0.0
    for step in range(steps + 1):
        t0 = time.perf_counter()
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if step > 0:
            fwd += t1 - t0; bwd += t2 - t1; step_t += t3 - t2
    per = (fwd + bwd + step_t) / steps
    n = inputs.numel()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode:>6}: torch {torch.__version__}{' peft ' + __import__('peft').__version__ if mode == 'lora' else ''}, {sum(p.numel() for p in params)/1e6:.1f} M trained, "
          f"{n/per:.1f} tokens/s ({per:.2f} s/step: forward {fwd/steps:.2f}, backward {bwd/steps:.2f}, clip+AdamW {step_t/steps:.2f}), peak RSS {peak:.0f} MiB")
