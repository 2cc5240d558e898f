#!/usr/bin/env bash
# Second batch of training scenarios (session 2): seeds 1024-1083, one seizure each with the type
# cycled over the five types (12 per type), 150 s each, then one dataset over seeds 1000-1083 (stride 2 s keeps it ~7 GB in memory).
# Seeds stay inside the training range 1000-2999; `ward eval` uses 900000+.
# Usage: bash scripts/make_train_data_more.sh [OUT_DIR=runs]   (run scripts/make_train_data.sh first)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs}"
types=(focal_clonic tonic tonic_clonic hypermotor myoclonic)
for s in $(seq 1024 1083); do
  t=${types[$(( (s - 1024) % 5 ))]}
  [ -f "$out/train_sim/$s/groundtruth.json" ] || \
    .venv/bin/ward sim render "sim://?seed=$s&duration=150&fps=6&width=640&height=360&seizures=1&types=$t" \
      --out "$out/train_sim/$s" >/dev/null
done
# shellcheck disable=SC2046
.venv/bin/ward dataset build $(for s in $(seq 1000 1083); do echo --sim "$out/train_sim/$s"; done) \
  --out "$out/data_train2" --stride-s 2 --seed 0
