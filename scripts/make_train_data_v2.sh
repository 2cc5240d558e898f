#!/usr/bin/env bash
# VSViG training data v2 and training, one resumable command (issue 16): `ward dataset generate`
# renders PATIENTS simulated patients (seeds 1000.., inside the training range 1000-2999; `ward eval`
# uses 900000+, validation 800000+) through the bed pipeline with the pose model into ward.frames/1,
# then `ward train vsvig` trains on it. Re-running skips complete scenarios and resumes training from
# OUT/vsvig/last.ckpt; MAX_MINUTES bounds one session's training (run again in the next session).
#
# Usage: bash scripts/make_train_data_v2.sh [OUT=runs/v2] [PATIENTS=1000] [JOBS=1]
#   env: THREADS (per job, default 2), EPOCHS (20), MAX_MINUTES (unset: no limit), PRECISION (auto)
# Cost (docs/detection.md, "Training"): see docs/results/bench_train_data.json for the measured rates.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/v2}"
patients="${2:-1000}"
jobs="${3:-1}"
threads="${THREADS:-2}"
.venv/bin/ward dataset generate --out "$out/data" --patients "$patients" --seed-start 1000 \
  --jobs "$jobs" --threads "$threads"
resume=()
[ -f "$out/vsvig/last.ckpt" ] && resume=(--resume)
.venv/bin/ward train vsvig --data "$out/data" --out "$out/vsvig" --epochs "${EPOCHS:-20}" \
  --precision "${PRECISION:-auto}" --threads "$((threads * jobs))" \
  ${MAX_MINUTES:+--max-minutes "$MAX_MINUTES"} "${resume[@]}"
