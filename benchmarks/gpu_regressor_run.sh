#!/usr/bin/env bash
# One GPU session's checks for the regressors and the scale-out estimate, in order of value, each
# under its own time limit so that one slow part cannot take the others with it:
#
#   1. train the image regressor on synthetic renders of the open model (TRAIN_MINUTES) -> OUT/
#      regressor.pt, training.json, training.png
#   2. evaluate it: 500 held-out renders (pose, landmark, face-vertex errors), throughput at batch
#      256, fits from zero vs from it (bench_regressor.py evaluate) -> OUT/regressor_cuda.json
#   3. landmark-regressor initialisation on the 200 prepared renders (bench_init.py
#      --from-prepared) -> OUT/init_cuda.json
#   4. fit throughput per batch size (bench_fit.py), for the FFHQ-scale estimate -> OUT/fit_cuda.json
#
#   benchmarks/gpu_regressor_run.sh OUT [PYTHON]      # from the repository root, on a CUDA machine
#
# MODEL (a trained regressor: skip step 1), DEVICE, TRAIN_MINUTES, TRAIN_BATCH, TRAIN_VALIDATION, EVAL_RENDERS, EVAL_FITS, EVAL_ITERS, INIT_LIMIT, INIT_ITERS,
# INIT_SCHEDULES and FIT_BATCHES shrink it for a dry run on the CPU. Needs torch with CUDA, numpy, scipy, opencv, imageio, scikit-image, tqdm; flamefit is imported
# from this checkout through a folder of links (no install). Logs go to OUT/log.txt.
set -u
out=${1:?usage: gpu_regressor_run.sh OUT [PYTHON]}
py=${2:-python3}
: "${DEVICE:=cuda}" "${TRAIN_MINUTES:=4}" "${TRAIN_BATCH:=256}" "${EVAL_RENDERS:=500}" "${EVAL_FITS:=100}"
: "${EVAL_ITERS:=200,800}" "${EVAL_REGRESSOR_ITERS:=200,800;0,800;50,750}" "${INIT_LIMIT:=200}" "${INIT_ITERS:=200,800}" "${FIT_BATCHES:=1 16 64 256}"
: "${INIT_SCHEDULES:=50,800;50,300;100,400;50,200}" "${TRAIN_VALIDATION:=256}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
root=$(pwd)
site=$(mktemp -d)
mkdir -p "$site/flamefit"
cp flamefit/*.py "$site/flamefit/"
for package in flame renderer fitting texture_space regressor web scale; do
  [ -d "$package" ] && ln -s "$root/$package" "$site/flamefit/$package"
done
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
log="$out/log.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; \
  "$py" -c "import torch, flamefit; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"; } >>"$log" 2>&1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*" >>"$log"
  local started=$SECONDS
  timeout "$limit" "$@" >>"$log" 2>&1
  echo "== $name: exit $? after $((SECONDS - started)) s" >>"$log"
}

if [ -z "${MODEL:-}" ]; then
  MODEL=$out
  step train "$("$py" -c "print(round($TRAIN_MINUTES * 60) + 70)")" "$py" benchmarks/bench_regressor.py train --device "$DEVICE" \
    --budget-minutes "$TRAIN_MINUTES" --batch-size "$TRAIN_BATCH" --validation-size "$TRAIN_VALIDATION" --out "$out"
fi
step evaluate 150 "$py" benchmarks/bench_regressor.py evaluate --model "$MODEL" --device "$DEVICE" \
  --renders "$EVAL_RENDERS" --fits "$EVAL_FITS" --iters "$EVAL_ITERS" --regressor-iters "$EVAL_REGRESSOR_ITERS" \
  --json "$out/regressor_cuda.json"
if [ "$INIT_LIMIT" -gt 0 ] && [ -f benchmarks/results/init_prepared_2026-11-30.npz ]; then
  step init 150 "$py" benchmarks/bench_init.py --from-prepared benchmarks/results/init_prepared_2026-11-30.npz \
    --device "$DEVICE" --batch 200 --limit "$INIT_LIMIT" --iters "$INIT_ITERS" --regressor-schedules "$INIT_SCHEDULES" \
    --parts regressor,fits \
    --out "$out/init_cuda.json"
fi
# shellcheck disable=SC2086
[ -n "$FIT_BATCHES" ] && step fit 90 "$py" benchmarks/bench_fit.py --device "$DEVICE" --batch $FIT_BATCHES --iters 20,80 --name gpu_run
mv benchmarks/results/fit_*_gpu_run.json "$out/fit_cuda.json" 2>/dev/null
tail -n 40 "$log"
