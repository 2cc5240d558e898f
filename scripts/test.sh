#!/usr/bin/env bash
# The whole test suite: sets up .venv, starts the throwaway services the tests need
# (PostgreSQL when its binaries are installed), runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Idle OpenMP threads sleep instead of spinning: on shared CPUs spinning made torch ~10x slower.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# A native crash (SIGSEGV, SIGABRT) prints the Python stack of every thread instead of dying silently.
export PYTHONFAULTHANDLER=1
# shellcheck source=scripts/services.sh
source scripts/services.sh
start_test_services
trap stop_test_services EXIT
set +e
# The layer rules first (seconds): a module importing upwards fails the run (docs/architecture.md#layers).
.venv/bin/lint-imports --no-cache
lint_rc=$?
.venv/bin/python -m pytest "$@"
rc=$?
[ $rc -eq 0 ] && rc=$lint_rc
set -e
exit $rc
