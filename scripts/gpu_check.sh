#!/usr/bin/env bash
# The GPU path of `qfix verify`, in one short command on a lent GPU machine (docs/verify.md).
#
#   bash scripts/gpu_check.sh prepare   # here, once: stage bitsandbytes under .cache/gpu-check
#   bash scripts/gpu_check.sh run       # there: verify --device cuda --model tiny, and auto/none
#
# The lent machine (an H200; python3 = 3.12 with torch 2.11.0+cu130, transformers and accelerate,
# no bitsandbytes, no network) cannot install anything, so `prepare` stages bitsandbytes as a
# plain folder put on PYTHONPATH there: copied from the test venv when it exists (same version),
# else downloaded as a wheel. Only the CPU library and the CUDA libraries named in
# QFIX_GPU_CUDA_LIBS are kept, so the staged folder stays far under the 64 MiB that may travel
# (bitsandbytes >= 0.50 falls back within a CUDA major, so 130 also serves torch cu13x).
#
# With the device tool:
#   run(command="bash scripts/gpu_check.sh run", carry=[".cache/gpu-check"], timeout_s=420)
# It writes $OUT/gpu-verify.txt and $OUT/gpu-verify.json (both verdicts, qfix.verify/1) and
# exits 0 only when both runs exit 0 (the GPU path passed).
#
# Knobs: QFIX_GPU_BNB (bitsandbytes version, default 0.50.2), QFIX_GPU_CUDA_LIBS (default
# "128 130 132"), QFIX_GPU_PYTHON (target interpreter, default python3), QFIX_GPU_TIMEOUT
# (seconds per verify run, default 240).
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE=.cache/gpu-check
BNB_VERSION=${QFIX_GPU_BNB:-0.50.2}
KEEP_LIBS=${QFIX_GPU_CUDA_LIBS:-"128 130 132"}

prepare() {
  rm -rf "$STAGE/site"
  mkdir -p "$STAGE/site"
  local venv_pkg
  venv_pkg=$(ls -d .cache/venvs/torch213-bnb/lib/python3*/site-packages/bitsandbytes 2>/dev/null | head -n1 || true)
  local have=""
  if [ -n "$venv_pkg" ]; then
    have=$(ls -d "$(dirname "$venv_pkg")"/bitsandbytes-*.dist-info 2>/dev/null | head -n1 || true)
  fi
  if [ -n "$have" ] && [[ "$(basename "$have")" == "bitsandbytes-$BNB_VERSION.dist-info" ]]; then
    echo "staging bitsandbytes $BNB_VERSION from the test venv"
    cp -a "$venv_pkg" "$have" "$STAGE/site/"
  else
    echo "downloading bitsandbytes $BNB_VERSION (manylinux x86_64 wheel)"
    local py=python3
    [ -x .venv/bin/python ] && py=.venv/bin/python
    rm -rf "$STAGE/wheels"
    "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$STAGE/wheels" "bitsandbytes==$BNB_VERSION"
    "$py" -m zipfile -e "$STAGE"/wheels/bitsandbytes-*.whl "$STAGE/site"
    rm -rf "$STAGE/wheels"
  fi
  find "$STAGE/site" -name __pycache__ -prune -exec rm -rf {} +
  local lib keep v
  for lib in "$STAGE"/site/bitsandbytes/libbitsandbytes_*; do
    keep=no
    case "$(basename "$lib")" in libbitsandbytes_cpu.*) keep=yes ;; esac
    for v in $KEEP_LIBS; do
      case "$(basename "$lib")" in "libbitsandbytes_cuda$v".*) keep=yes ;; esac
    done
    [ "$keep" = yes ] || rm -f "$lib"
  done
  echo "staged: $(ls "$STAGE"/site/bitsandbytes/libbitsandbytes_* | xargs -n1 basename | tr '\n' ' ')"
  du -sh "$STAGE"
}

run_check() {
  local out=${OUT:-$STAGE/out}
  mkdir -p "$out"
  local py=${QFIX_GPU_PYTHON:-python3}
  export PYTHONPATH="$PWD/$STAGE/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1
  { nvidia-smi -L || echo "nvidia-smi: not available"; } 2>&1 | tee "$out/nvidia-smi.txt"
  "$py" - "$out" "${QFIX_GPU_TIMEOUT:-240}" <<'PY'
import json
import sys

from repair.verify import format_verdict, run_verify, verdict_to_dict

out, timeout = sys.argv[1], float(sys.argv[2])
verdicts, text, worst = [], [], 0
for device, model in (("cuda", "tiny"), ("auto", "none")):
    head = f"== qfix verify --device {device} --model {model}  ({sys.executable})"
    print(head, flush=True)
    v = run_verify(sys.executable, device=device, model=model, timeout=timeout,
                   progress=lambda line: print("  " + line, flush=True))
    print(v.summary, f"\nexit code {int(v.exit_code)}\n", flush=True)
    text += [head, format_verdict(v), f"exit code {int(v.exit_code)}", ""]
    verdicts.append(verdict_to_dict(v))
    worst = max(worst, int(v.exit_code))
with open(f"{out}/gpu-verify.txt", "w") as fh:
    fh.write("\n".join(text))
with open(f"{out}/gpu-verify.json", "w") as fh:
    json.dump({"runs": verdicts}, fh, indent=2)
sys.exit(0 if worst == 0 else 1)
PY
}

case "${1:-}" in
  prepare) prepare ;;
  run) run_check ;;
  *) echo "usage: bash scripts/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
