"""Every speed figure of the README, bftembed beside its peer, in one run on this machine.

Each comparison runs bftembed's bench and the peer's script alternately (ours then the
peer in odd rounds, the peer then ours in even rounds), on the same inputs: the Rust
bench writes them under target/ and the peer reads them there. The medians over rounds
go into one Markdown table with the ratio bftembed / peer (above 1: bftembed is faster),
headed by the machine and every version; every raw figure goes into a JSONL file beside.

    python benches/side_by_side.py                      # everything, 2 rounds
    python benches/side_by_side.py --only embed,probe   # some comparisons
    python benches/side_by_side.py --only embed-bf16,embed-mpnet-bf16   # CPUs with AMX
    python benches/side_by_side.py --rounds 3 --out benches/results/NAME

Peers (install into the Python that runs this script):
    pip install torch sentence-transformers scikit-learn hnswlib transformers
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AVX2=ON -DGGML_FMA=ON \
        -DGGML_F16C=ON" pip install --no-binary llama-cpp-python llama-cpp-python
(the llama.cpp build flags that work on this project's machines; the table records
which build ran). A peer that is not installed is reported as missing, not skipped
silently. Run it on a quiet machine: figures move by about 10% between runs here.
"""
import argparse
import datetime
import glob
import importlib
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PY = sys.executable
HOME = os.environ.get("BFTEMBED_HOME", os.path.expanduser("~/.cache/bftembed"))


def bench(name, **env):
    """Command and environment of one cargo bench (built before timing starts)."""
    return (["cargo", "bench", "-q", "--bench", name], env)


def peer(script, *args, **env):
    return ([PY, os.path.join("benches", "peers", script), *map(str, args)], env)


def figures(pattern, text, names):
    """{name: float} for every match of `pattern` (named groups: key parts + value)."""
    out = {}
    for m in re.finditer(pattern, text, re.M):
        groups = m.groupdict()
        value = float(groups.pop("value"))
        out[names.format(**groups)] = value
    return out


def generation_figures(text):
    """Prompt and generated tokens/s per batch size, from the bench or llama.cpp."""
    return {**figures(GEN_RE, text, "prompt tok/s, batch {batch}"),
            **figures(DEC_RE, text, "generated tok/s, batch {batch}")}


def training_figures(text):
    """Training tokens/s per mode, from the bench or PyTorch."""
    return figures(TRAIN_RE, text, "training tokens/s, {mode}")


def median_of(pattern, text, name):
    values = [float(v) for v in re.findall(pattern, text, re.M)]
    return {name: statistics.median(values)} if values else {}


def model_dir(name):
    return os.path.join(HOME, "models", name)


def gguf_path(name="smollm2-135m-instruct"):
    found = glob.glob(os.path.join(model_dir(name), "*.gguf"))
    return found[0] if found else "MISSING-run-bftembed-models-fetch"


def dump_texts(model, count, path):
    """The bench's texts, for sentence-transformers."""
    env = dict(os.environ, BENCH_TEXTS=str(count), BENCH_MODEL=model)
    out = subprocess.run(["cargo", "bench", "-q", "--bench", "embed_throughput", "--",
                          "--dump-texts"], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    with open(path, "w", encoding="utf-8") as f:
        f.write(out)


def dump_vectors(path):
    subprocess.run(["cargo", "bench", "-q", "--bench", "store_query", "--", "--dump-vectors",
                    path], cwd=ROOT, capture_output=True, text=True, check=True)


EMBED_RE = r"^batch\s+(?P<batch>\d+): (?P<value>[\d.]+) texts/s"
GEN_RE = r"^batch (?P<batch>\d+): prompt (?P<value>[\d.]+) tok/s"
DEC_RE = r"^batch (?P<batch>\d+): prompt [\d.]+ tok/s \([^)]*\), generated (?P<value>[\d.]+) tok/s"
TRAIN_RE = r"^\s*(?P<mode>full|last4|lora)\b.*?(?P<value>[\d.]+) tokens/s"


def embed_comparison(model, label, count, batches, texts_path, precision="f32"):
    """One encoder beside sentence-transformers on `count` RefSeq gene texts, both sides
    at `precision` (bf16: ours on AMX tiles, PyTorch's weights in bfloat16)."""
    env = {"BENCH_TEXTS": count, "BENCH_BATCHES": batches, "BENCH_MODEL": model}
    peer_args = [model_dir(model), texts_path, 2, batches]
    inputs = f"{count} RefSeq gene texts"
    if precision != "f32":
        env["BENCH_PRECISION"] = precision
        peer_args.append(precision)
        label = f"{label} {precision}"
        inputs += f"; {precision} products on both sides (ours on AMX tiles, PyTorch through oneDNN)"
    return ("sentence_transformers",
            lambda: dump_texts(model, count, texts_path),
            bench("embed_throughput", **env),
            peer("st_embed.py", *peer_args),
            lambda t: figures(EMBED_RE, t, label + " texts/s, batch {batch}"),
            inputs)


def comparisons(args):
    """name -> (peer module, prepare(), ours, theirs, parse(text) -> {metric: value},
    inputs). A metric ending in ", s" is a time (lower is better); the others are rates."""
    texts = os.path.join(ROOT, "target", "side-by-side-texts-{}.txt")
    vectors = os.path.join(ROOT, "target", "side-by-side-vectors.f32")
    batches = "16,32,64"
    embed_texts = args.texts
    return {
        "embed": embed_comparison("all-minilm-l6-v2", "all-MiniLM-L6-v2", embed_texts, batches,
                                  texts.format("minilm")),
        "embed-bf16": embed_comparison("all-minilm-l6-v2", "all-MiniLM-L6-v2", embed_texts,
                                       batches, texts.format("minilm"), "bf16"),
        "embed-mpnet": embed_comparison("all-mpnet-base-v2", "all-mpnet-base-v2", args.mpnet_texts,
                                        "32", texts.format("mpnet")),
        "embed-mpnet-bf16": embed_comparison("all-mpnet-base-v2", "all-mpnet-base-v2",
                                             args.mpnet_texts, "32", texts.format("mpnet"),
                                             "bf16"),
        "probe": ("sklearn", None,
                  bench("probe_fit"),
                  peer("sklearn_probe.py", 2),
                  lambda t: median_of(r"fit \+ predict ([\d.]+) s", t,
                                      "GGI logistic probe fit + predict, s"),
                  "20,000 training pairs (test: every covered pair) x 768 features, median of 3 fits"),
        "store": ("hnswlib", lambda: dump_vectors(vectors),
                  bench("store_query"),
                  peer("hnswlib_query.py", vectors, 384),
                  lambda t: {**figures(r"^(?:hnsw|hnswlib) ef\s+(?P<ef>\d+): (?P<value>[\d.]+) "
                                       r"queries/s", t, "HNSW queries/s, ef {ef}"),
                             **figures(r"^(?:hnsw|hnswlib) ef\s+(?P<ef>\d+): [\d.]+ queries/s, "
                                       r"recall@10 (?P<value>[\d.]+)", t, "recall@10, ef {ef}"),
                             **figures(r"^(?:HNSW build \([^)]*\):|hnswlib \S+: build) "
                                       r"(?P<value>[\d.]+) s", t, "HNSW build (2 threads), s")},
                  "15,137 RefSeq/MiniLM vectors, queries on one thread"),
        "generate": ("llama_cpp", None,
                     bench("generate_throughput", BENCH_QUICK="1"),
                     peer("llamacpp_generate.py", gguf_path(), 2),
                     generation_figures,
                     "SmolLM2-135M GGUF, same prompt ids, greedy"),
        "generate-qwen": ("llama_cpp", None,
                          bench("generate_throughput", BENCH_QUICK="1",
                                BENCH_GENERATOR="qwen2.5-coder-0.5b-instruct"),
                          peer("llamacpp_generate.py", gguf_path("qwen2.5-coder-0.5b-instruct"), 2),
                          generation_figures,
                          "Qwen2.5-Coder-0.5B GGUF (Q5_0/Q8_0/Q6_K/Q4_K), same prompt ids, greedy"),
        "train": ("torch", None,
                  bench("train_throughput"),
                  peer("torch_train.py"),
                  training_figures,
                  "SmolLM2-135M f32, batch 4 x 128"),
        "train-qwen": ("torch", None,
                       bench("train_throughput", BENCH_TRAIN_MODEL="qwen2.5-coder-0.5b-instruct"),
                       peer("torch_train.py", "last4", "lora",
                            BENCH_TRAIN_MODEL="qwen2.5-coder-0.5b-instruct"),
                       training_figures,
                       "Qwen2.5-Coder-0.5B f32, batch 4 x 128; LoRA r 8 on q/k/v/o (peft for torch)"),
    }


def versions():
    def run(cmd):
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    cpu = "?"
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "?":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    out = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "vector extensions": " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni",
                                                  "avx512_bf16") if f in flags),
        "bftembed commit": run(["git", "rev-parse", "--short", "HEAD"])
        + (" (with uncommitted changes)" if run(["git", "status", "--porcelain",
                                                  "--untracked-files=no"]) else ""),
        "rustc": run(["rustc", "-V"]),
        "python": platform.python_version(),
    }
    # Installed versions, by distribution name (hnswlib has no __version__).
    for module, dist in (("torch", "torch"), ("sentence_transformers", "sentence-transformers"),
                         ("sklearn", "scikit-learn"), ("numpy", "numpy"),
                         ("hnswlib", "hnswlib"), ("llama_cpp", "llama_cpp_python"),
                         ("transformers", "transformers")):
        try:
            importlib.import_module(module)
            out[module] = importlib.metadata.version(dist)
        except (ImportError, importlib.metadata.PackageNotFoundError):
            out[module] = "not installed"
    if out["llama_cpp"] != "not installed":
        out["llama_cpp"] += (" (built from source; CMAKE_ARGS as in this script's docstring "
                             "unless the environment said otherwise)")
    return out


def run_once(cmd_env, log):
    cmd, env = cmd_env
    full_env = dict(os.environ, RAYON_NUM_THREADS="2", **{k: str(v) for k, v in env.items()})
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True)
    # stderr is progress bars and, for llama.cpp, thousands of loader lines: the log
    # keeps its tail (figures are printed to stdout; all of a failing run's stderr is
    # in the error below).
    tail = "\n".join(proc.stderr.splitlines()[-20:])
    log.write(f"$ {' '.join(cmd)}  # env {env}\n{proc.stdout}[stderr, last lines]\n{tail}\n\n")
    log.flush()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="embed,embed-mpnet,probe,store,generate,train")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--mpnet-texts", type=int, default=500)
    today = datetime.date.today().isoformat()
    parser.add_argument("--out", default=os.path.join(ROOT, "benches", "results",
                                                      f"side_by_side_{today}"))
    args = parser.parse_args()
    info = versions()
    table = comparisons(args)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in table]
    if unknown:
        sys.exit(f"unknown comparison(s) {unknown}; known: {', '.join(table)}")
    print("building the benches ...", flush=True)
    subprocess.run(["cargo", "bench", "--no-run", "-q"], cwd=ROOT, check=True)
    rows, raw = [], open(args.out + ".jsonl", "w")
    with open(args.out + ".log", "w") as log:
        for name in wanted:
            module, prepare, ours, theirs, parse, what = table[name]
            if info.get(module) == "not installed":
                rows.append((name, what, f"peer `{module}` not installed", None, None))
                continue
            if prepare:
                prepare()
            got = {"bftembed": {}, module: {}}
            for r in range(args.rounds):
                order = [("bftembed", ours), (module, theirs)]
                for tool, cmd in (order if r % 2 == 0 else order[::-1]):
                    print(f"[{name}] round {r + 1}/{args.rounds}: {tool}", flush=True)
                    for metric, value in parse(run_once(cmd, log)).items():
                        got[tool].setdefault(metric, []).append(value)
                        raw.write(json.dumps({"comparison": name, "tool": tool, "round": r,
                                              "metric": metric, "value": value}) + "\n")
                        raw.flush()
            for metric in sorted(set(got["bftembed"]) | set(got[module])):
                a, b = got["bftembed"].get(metric), got[module].get(metric)
                rows.append((name, what, metric, a and statistics.median(a),
                             b and statistics.median(b)))
            write_table(args, info, rows)
    write_table(args, info, rows)
    print(open(args.out + ".md").read())


def write_table(args, info, rows):
    lines = [f"# bftembed beside its peers, {info['date']}", "",
             f"`python benches/side_by_side.py --rounds {args.rounds} --only {args.only}`; "
             "medians over rounds, run alternately on one machine. Ratio = bftembed / peer "
             "for rates, peer / bftembed for times: above 1, bftembed is faster.", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "| comparison | inputs | figure | bftembed | peer | ratio |",
              "|---|---|---|---|---|---|"]
    for name, what, metric, a, b in rows:
        if a is None or b is None or metric.startswith("recall"):
            ratio = "–"
        elif metric.endswith(", s"):
            ratio = f"{b / a:.2f}x"
        else:
            ratio = f"{a / b:.2f}x"
        fmt = lambda v: ("–" if v is None else f"{v:.4f}" if v < 1 else  # noqa: E731
                         f"{v:,.2f}" if v < 100 else f"{v:,.0f}")
        lines.append(f"| {name} | {what} | {metric} | {fmt(a)} | {fmt(b)} | {ratio} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
