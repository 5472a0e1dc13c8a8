#!/usr/bin/env bash
# Step time on a GPU machine: the reference MNIST shapes, then batch 4096, one run each.
# Writes everything to $OUT/gpu_step_time.txt when OUT is set (stdout otherwise).
#     bash benchmarks/gpu_step_time.sh
# Nothing here installs anything: it uses the installed expfam and whatever jax the
# environment has, and says which devices that jax sees (a CPU-only jax still runs,
# on the CPU). PYTHON picks the interpreter (default: python3).
set -u
cd "$(dirname "$0")/.."
log="${OUT:+$OUT/gpu_step_time.txt}"
run() {
  echo "\$ $*"
  "$@" 2>&1
  echo "(exit $?)"
}
{
  date -u
  run "${PYTHON:-python3}" -c "import jax; print(jax.__version__, jax.devices())"
  command -v nvidia-smi >/dev/null && run nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  run "${PYTHON:-python3}" benchmarks/step_time.py --repeats 5 --chunk 10
  run "${PYTHON:-python3}" benchmarks/step_time.py --repeats 5 --chunk 10 --batch-size 4096
} | if [ -n "$log" ]; then tee "$log"; else cat; fi
