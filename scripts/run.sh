#!/usr/bin/env bash
# Runs the ward: sets up .venv, then `serve run serve_configs/ward.yaml` (or the config given).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
exec .venv/bin/serve run "${1:-serve_configs/ward.yaml}"
