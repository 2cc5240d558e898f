#!/usr/bin/env bash
# Copies trained checkpoints into models/, records checksums and rewrites the model cards.
# Usage: bash scripts/ship_models.sh VSVIG_CKPT POSE_CKPT [EVAL_JSON EVAL_COMMAND [VAL_JSON VAL_COMMAND [FULL_JSON FULL_COMMAND]]]
# (omitted ones: the committed docs/results JSON named in scripts/model_cards.py; re-run them for new weights)
set -euo pipefail
cd "$(dirname "$0")/.."
cp "$1" models/ward-vsvig-light.pt
cp "$2" models/ward-pose-small.pt
(cd models && sha256sum ward-vsvig-light.pt ward-pose-small.pt partition_order_ward.pt > SHA256SUMS)
.venv/bin/python scripts/model_cards.py "${3:-}" "${4:-}" "${5:-}" "${6:-}" "${7:-}" "${8:-}"
