#!/usr/bin/env bash
# The GPU path, measured on a node this project may only borrow: one script, <= 8 minutes.
#
# On a single NVIDIA GPU node (run from anywhere; it works in the repository root):
#   1. checks that there is a GPU (fails in seconds, exit 2, when there is none) and a CUDA torch
#      (uses the one installed; otherwise tries `pip install torch==2.13.0` and says so);
#   2. GPU outputs against CPU fp32 torch with the accuracy gates' tolerances
#      (benchmarks/device_check.py: pose heatmaps/PAFs and patient joints, VSViG p);
#   3. sweeps pose and VSViG batch sizes on the GPU (bench_pose.py / bench_vsvig.py, torch fp32 and bf16);
#   4. runs bench_ward.py with more and more simulated beds on the GPU (official pose size) and
#      prints the beds per GPU sustained at 6 fps with p95 frame->stored latency.
# Everything lands under $OUT (or ./device_out): summary.txt, parity.json, bench_*.json, logs.
#
#   bash benchmarks/device_check.sh            # on the GPU node
#   bash benchmarks/device_check.sh --dry-run  # on a CPU: the same steps, tiny, on device cpu (checks the script)
#
# Each step has its own time limit (timeout), so a hung step costs its budget, not the node.
set -uo pipefail

cd "$(dirname "$0")/.."
DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "device_check: unknown argument $arg (use --dry-run or --help)" >&2; exit 64 ;;
  esac
done
OUT="${OUT:-./device_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
log() { echo "[device_check $(date -u +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }
START=$SECONDS
FAILED=0

# ---------------------------------------------------------------------------- 1. GPU and torch
if [ "$DRY" = 1 ]; then
  DEVICE=cpu
  log "dry run on the CPU: every step, tiny, on device cpu (no GPU figure is measured)"
else
  DEVICE=cuda
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q "GPU"; then
    log "FAIL: no NVIDIA GPU on this machine (nvidia-smi missing or lists no GPU)."
    log "      Run this on a GPU node, or 'bash benchmarks/device_check.sh --dry-run' to check the script on a CPU."
    exit 2
  fi
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
  log "GPU: $(nvidia-smi -L | head -1)"
fi
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY="$(command -v python3 || command -v python)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE
export WARD_CACHE_DIR="${WARD_CACHE_DIR:-$OUT/cache}"
log "python: $PY"
if [ "$DRY" = 0 ] && ! timeout 60 "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>>"$OUT/setup.log"; then
  log "torch here has no CUDA ($("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not installed')):"
  log "trying 'pip install torch==2.13.0' (a CUDA build on Linux x86-64; needs PyPI, which this node may not reach)"
  if ! timeout 240 "$PY" -m pip install torch==2.13.0 >>"$OUT/setup.log" 2>&1 \
     || ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>>"$OUT/setup.log"; then
    log "FAIL: no CUDA torch (pip install failed or gave a CPU build; see $OUT/setup.log)"
    exit 3
  fi
  log "installed torch==2.13.0 with pip"
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" 2>&1 | tee -a "$SUMMARY"

step() {  # step NAME SECONDS command...: run with a time limit, log to $OUT/NAME.log, note failures
  local name=$1 limit=$2; shift 2
  log "step $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  if [ $rc = 0 ]; then log "step $name: ok"; else log "step $name: FAILED (exit $rc; 124 = time limit), see $OUT/$name.log"; FAILED=1; fi
  return $rc
}

if [ "$DRY" = 1 ]; then
  # ---------------------------------------------------------------- dry run: the same steps, tiny
  step parity 120 "$PY" benchmarks/device_check.py --device cpu --quick --out "$OUT"
  step bench_pose 120 "$PY" benchmarks/bench_pose.py --device cpu --engines torch:fp32 --configs small \
    --batches 1 --reps 1 --height 64 --no-decoder --json "$OUT/bench_pose.json"
  step bench_vsvig 120 "$PY" benchmarks/bench_vsvig.py --device cpu --engines torch:fp32 --variants light \
    --batches 1 --quick --no-reference --no-unfused --json "$OUT/bench_vsvig.json"
  log "bench_ward skipped in the dry run (it starts a whole ward); on the GPU node it runs:"
  log "  $PY benchmarks/bench_ward.py --device cuda --pose official --beds 8,16,32 --duration 30 --warmup 5 --ray-cpus N --stop-early"
else
  # ------------------------------------------------------------------- 2. outputs vs CPU fp32
  step parity 100 "$PY" benchmarks/device_check.py --device cuda --out "$OUT"
  # ------------------------------------------------------------------- 3. batch-size sweeps
  step bench_pose 100 "$PY" benchmarks/bench_pose.py --device cuda --engines torch:fp32 torch:bf16 \
    --configs official small --batches 1 8 32 64 --reps 5 --threads 4 --no-decoder --json "$OUT/bench_pose_cuda.json"
  step bench_vsvig 70 "$PY" benchmarks/bench_vsvig.py --device cuda --engines torch:fp32 torch:bf16 \
    --variants light base --batches 1 8 32 128 --min-time 0.5 --threads 4 --json "$OUT/bench_vsvig_cuda.json"
  # ------------------------------------------------------------------- 4. beds per GPU
  # Simulated cameras render on the CPUs (each bed ~0.2-0.3 cores at 12 fps), so the node's CPUs may
  # limit the beds before the GPU does; bench_ward's cpu_per_bed says which. Stops at the first N not
  # sustained; the time left decides how far it goes.
  LEFT=$(( 470 - (SECONDS - START) ))
  if [ "$LEFT" -gt 90 ]; then
    step bench_ward "$LEFT" "$PY" benchmarks/bench_ward.py --device cuda --pose official --beds 8,16,32 \
      --duration 30 --warmup 5 --ray-cpus "$(nproc)" --stop-early --no-network --json "$OUT/bench_ward_cuda.json"
  else
    log "bench_ward skipped: only ${LEFT}s of the 8-minute budget left"; FAILED=1
  fi
  "$PY" - "$OUT/bench_ward_cuda.json" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except OSError:
    sys.exit("no bench_ward result")
for r in d["rows"]:
    print(f"  {r['beds']} beds ({r['pose']}): {r['beds_at_6fps']} at 6 fps, p95 {r['lat_p95_s']} s, "
          f"dropped {r['dropped_per_s']:.2f}/s, CPU {r['cpu_per_bed']:.2f} cores/bed, sustained {r['sustained']}")
print("beds per GPU sustained at 6 fps with p95 < 2 s:", d["largest_sustained_beds"].get("official", 0))
EOF
fi
log "done in $(( SECONDS - START )) s; results in $OUT"
if [ $FAILED = 1 ]; then log "RESULT: some step failed (see above)"; exit 1; fi
log "RESULT: all steps passed"
