#!/usr/bin/env bash
# The whole test suite: sets up .venv, starts the throwaway services the tests need
# (PostgreSQL when its binaries are installed), runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Idle OpenMP threads sleep instead of spinning: on shared CPUs spinning made torch ~10x slower.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# shellcheck source=scripts/services.sh
source scripts/services.sh
start_test_services
trap stop_test_services EXIT
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
exit $rc
