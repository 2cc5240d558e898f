#!/usr/bin/env bash
# Renders the simulator scenarios the shipped VSViG was trained on and builds the clip dataset.
# Training/validation seeds 1000-1023 (1000-1019 with one random seizure, 1020-1023 seizure-free);
# `ward eval` uses seeds from 900000 on, so the evaluation never sees these patients.
# Usage: bash scripts/make_train_data.sh [OUT_DIR=runs]   (about 3 GB of clips)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs}"
for s in $(seq 1000 1023); do
  if [ "$s" -lt 1020 ]; then q="seizures=1"; else q="seizures=0"; fi
  [ -f "$out/train_sim/$s/groundtruth.json" ] || \
    .venv/bin/ward sim render "sim://?seed=$s&duration=180&fps=6&width=640&height=360&$q" --out "$out/train_sim/$s" >/dev/null
done
# shellcheck disable=SC2046
.venv/bin/ward dataset build $(for s in $(seq 1000 1023); do echo --sim "$out/train_sim/$s"; done) \
  --out "$out/data_train" --stride-s 1 --seed 0
