"""llama.cpp (through llama-cpp-python) on the same GGUF and the same prompt token ids
as benches/generate_throughput.rs: prompt tokens/s (each prompt decoded on its own) and
generated tokens/s for batch 1 and 8 (one token per sequence per llama_decode call,
the greedy token fed back for a fixed number of steps).

Run after the Rust bench (it writes target/generate-bench-prompts.json):
    python benches/peers/llamacpp_generate.py MODEL.gguf [THREADS]
"""
import ctypes
import json
import sys
import time

import llama_cpp as ll
import numpy as np

model_path = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
spec = json.load(open("target/generate-bench-prompts.json"))
prompts, steps = spec["prompts"], spec["decode_steps"]

ll.llama_backend_init()
mparams = ll.llama_model_default_params()
model = ll.llama_model_load_from_file(model_path.encode(), mparams)
vocab = ll.llama_model_get_vocab(model)
n_vocab = ll.llama_vocab_n_tokens(vocab)


def new_context(n_seq):
    cparams = ll.llama_context_default_params()
    cparams.n_ctx = 1024 * n_seq
    cparams.n_batch = 512
    cparams.n_ubatch = 512
    cparams.n_seq_max = n_seq
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    return ll.llama_init_from_model(model, cparams)


def run(batch_size):
    ctx = new_context(batch_size)
    rows = prompts[:batch_size]
    batch = ll.llama_batch_init(512, 0, batch_size)
    nxt = []
    t = time.perf_counter()
    for seq, ids in enumerate(rows):
        batch.n_tokens = len(ids)
        for i, tok in enumerate(ids):
            batch.token[i] = tok
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = i == len(ids) - 1
        assert ll.llama_decode(ctx, batch) == 0
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, len(ids) - 1), shape=(n_vocab,))
        nxt.append(int(np.argmax(logits)))
    prefill = time.perf_counter() - t
    pos = [len(ids) for ids in rows]
    t = time.perf_counter()
    for _ in range(steps):
        batch.n_tokens = batch_size
        for seq in range(batch_size):
            batch.token[seq] = nxt[seq]
            batch.pos[seq] = pos[seq]
            batch.n_seq_id[seq] = 1
            batch.seq_id[seq][0] = seq
            batch.logits[seq] = True
            pos[seq] += 1
        assert ll.llama_decode(ctx, batch) == 0
        for seq in range(batch_size):
            logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, seq), shape=(n_vocab,))
            nxt[seq] = int(np.argmax(logits))
    decode = time.perf_counter() - t
    n_prompt = sum(len(r) for r in rows)
    print(
        f"batch {batch_size}: prompt {n_prompt / prefill:.0f} tok/s ({n_prompt} tokens), "
        f"generated {batch_size * steps / decode:.1f} tok/s ({batch_size * steps} tokens)"
    )
    ll.llama_batch_free(batch)
    ll.llama_free(ctx)


print(f"llama.cpp via llama-cpp-python {ll.__version__}, {threads} threads")
run(1)  # warm-up: thread pool, graph allocation, first-touch pages
print("(the line above is the warm-up)")
for b in (1, 8):
    run(b)
