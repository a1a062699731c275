#!/usr/bin/env bash
# imgan on a CUDA GPU, in one go (under 5 minutes on one H200): every image command in
# fp32/fp16/bf16 against the CPU in fp32, the NaN fallback, OOM recovery under a tiny memory cap,
# torchrun DDP for two steps, and Real-ESRGAN architecture throughput against the bf16 peak.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine
#   bash benchmarks/gpu_check.sh --device cpu    # dry run: the same code paths on the CPU, tiny sizes
#                                                # (or IMGAN_GPU_CHECK_DEVICE=cpu)
#   IMGAN_GPU_CHECK_KEEP=1 keeps the work folder (images, outputs, each section's stderr);
#   IMGAN_GPU_CHECK_BUDGET=290 is the time for all sections together, in seconds.
#
# Prints torch/CUDA versions and the device first, then one line per check (PASS name: figures,
# FAIL name: reason, SKIP name: why), then a summary. Exit status 1 if anything failed.
# The work is done by benchmarks/gpu_check.py, one section per process, each under `timeout`.
#
# Installs nothing beyond the README: if imgan's dependencies (torch...) do not import in
# $PYTHON (default python3), it makes a venv (with the system's site packages, so a CUDA torch
# already installed is kept) and runs the README's `pip install -e ".[test]"` in it. Nothing is
# downloaded by the checks (IMGAN_OFFLINE=1): the embedded models and random weights only.

set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DEVICE="${IMGAN_GPU_CHECK_DEVICE:-cuda}"
BUDGET="${IMGAN_GPU_CHECK_BUDGET:-290}"  # seconds for all sections together

while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="${2:?--device needs cuda or cpu}"; shift 2 ;;
        --device=*) DEVICE="${1#--device=}"; shift ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [--device cuda|cpu]" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "--device must be cuda or cpu, not $DEVICE" >&2; exit 2 ;; esac

START=$SECONDS
PY="${PYTHON:-python3}"
# This tree's imgan, whatever else is installed.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# imgan itself comes from this tree (PYTHONPATH); "installed" means its dependencies import. An
# error inside imgan's own code must show up as FAIL lines, not trigger an install.
DEPENDENCIES="import torch, torchvision, typer, rich, PIL, cv2, numpy, safetensors, platformdirs, filelock, skimage"
if ! "$PY" -c "$DEPENDENCIES" >/dev/null 2>&1; then
    VENV="${IMGAN_GPU_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/imgan-gpu-check-venv}"
    echo "INFO imgan's dependencies do not import in $PY: installing as the README says, into $VENV"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv --system-site-packages "$VENV" || { echo "FAIL install: cannot create $VENV"; exit 1; }
    fi
    if ! (cd "$ROOT" && "$VENV/bin/python" -m pip install -e ".[test]"); then
        echo "FAIL install: pip install -e \".[test]\" failed (see above)"
        exit 1
    fi
    PY="$VENV/bin/python"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/imgan-gpu-check.XXXXXX")"
if [ -n "${IMGAN_GPU_CHECK_KEEP:-}" ]; then  # keep inputs, outputs and each section's stderr
    trap 'echo "== work folder kept: $WORK"' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
export IMGAN_OFFLINE=1 IMGAN_HOME="$WORK/imgan-home" PYTHONUNBUFFERED=1
LOG="$WORK/all.log"
: >"$LOG"

# section NAME LIMIT: run one section of gpu_check.py under `timeout`; its lines go to stdout and
# $LOG. A section that times out or dies without saying why becomes a FAIL line of its own.
section() {
    local name="$1" limit="$2" left rc
    left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -lt 10 ]; then
        echo "FAIL $name: not run, the ${BUDGET}s budget is spent" | tee -a "$LOG"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local before
    before=$(grep -c '^FAIL ' "$LOG")
    timeout --kill-after=10 "$limit" "$PY" "$HERE/gpu_check.py" --device "$DEVICE" --work "$WORK" "$name" \
        2>"$WORK/$name.stderr" | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL $name: timed out after ${limit}s (checks above this line finished)" | tee -a "$LOG"
    elif [ "$rc" -ne 0 ] && [ "$(grep -c '^FAIL ' "$LOG")" -eq "$before" ]; then
        echo "FAIL $name: exit $rc: $(grep -v '^\s*$' "$WORK/$name.stderr" | tail -n 3 | tr '\n' ' ' | cut -c1-500)" \
            | tee -a "$LOG"
    fi
}

echo "== imgan GPU check ($DEVICE) $(date -u '+%Y-%m-%d %H:%M:%SZ'), $ROOT, python: $PY"
if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv,noheader 2>/dev/null \
        | sed 's/^/INFO nvidia-smi: /'
fi
section env 60
if [ "$DEVICE" = cuda ] && grep -q '^FAIL env-cuda' "$LOG"; then
    echo "== CUDA is not usable here; the other sections need it. Dry run: $0 --device cpu"
    exit 1
fi
section commands 150
section nan 45
section oom 60
section ddp 120
section throughput 120

PASSED=$(grep -c '^PASS ' "$LOG")
FAILED=$(grep -c '^FAIL ' "$LOG")
SKIPPED=$(grep -c '^SKIP ' "$LOG")
echo "== summary: $PASSED passed, $FAILED failed, $SKIPPED skipped in $((SECONDS - START))s ($DEVICE)"
if [ "$FAILED" -gt 0 ]; then
    grep '^FAIL ' "$LOG" | sed 's/^/   /'
    exit 1
fi
exit 0
