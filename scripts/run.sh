#!/usr/bin/env bash
# Runs the ward: sets up .venv, then `serve run serve_configs/ward.yaml` (or the config given).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Idle OpenMP threads sleep instead of spinning: on shared CPUs spinning made torch ~10x slower.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
# a busy small machine can take longer than Serve's 5 s to start the HTTP proxy's process
export RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S="${RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S:-30}"
exec .venv/bin/serve run "${1:-serve_configs/ward.yaml}"
