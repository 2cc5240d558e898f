#!/usr/bin/env bash
# Runs the ward: sets up .venv, then `ward run serve_configs/ward.yaml` (or the config given), i.e.
# `serve run` with SIGTERM/SIGINT/SIGHUP all stopping it cleanly (ward/serve/launcher.py, which also
# sets RAY_AUTH_MODE=token, OMP_WAIT_POLICY and the Serve proxy timeout unless already set).
# Ray runs with token authentication: the token is $RAY_AUTH_TOKEN, else the file $RAY_AUTH_TOKEN_PATH,
# else ~/.ray/auth_token, generated there (mode 0600) on the first start. `ray`/`serve` commands
# against this ward need RAY_AUTH_MODE=token (e.g. `RAY_AUTH_MODE=token serve status`).
# First start: the admin account comes from WARD_ADMIN_PASSWORD (+ WARD_ADMIN_USER, default admin),
# or else a one-time password is printed once in this output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ward run "${1:-serve_configs/ward.yaml}"
