#!/usr/bin/env bash
# The shared-setup comparison (issue 4), end to end with bftembed commands only:
#  1. train SFT, DFT, BFT and BFT-v3 from the same base, data, steps, batch and seed
#     (resuming any run that was interrupted; finished runs are not redone);
#  2. write docs/train/comparison.md and docs/train/loss.png;
#  3. have the base model and each checkpoint write profiles of the same 201 evaluation
#     genes (train/eval_genes_sample.txt) with the same prompt and greedy decoding,
#     into runs/profiles/NAME.parquet, ready for `bftembed embed` and `bftembed eval`.
# About 70 minutes for the training and 10 for the profiles on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bftembed=${BFTEMBED:-target/release/bftembed}
"$bftembed" train --resume --compare docs/train \
    --config train/sft.toml --config train/dft.toml \
    --config train/bft.toml --config train/bft_v3.toml
mkdir -p runs/profiles
for name in base sft dft bft bft-v3; do
    model=runs/$name/checkpoint
    [ "$name" = base ] && model=smollm2-135m-instruct
    "$bftembed" profile --source model --model "$model" --max-new-tokens 128 \
        --genes train/eval_genes_sample.txt --out "runs/profiles/$name.parquet"
done
