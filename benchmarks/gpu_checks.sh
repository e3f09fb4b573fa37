#!/usr/bin/env bash
# Every check that needs a GPU, in one go: the nvdiffrast tests, then the GPU figures of the
# renderer, the fit, unwrapping and an end-to-end texture-space build of 1500 photos.
#
#   benchmarks/gpu_checks.sh [OUT] [STEP ...]     # from the repository root, on a CUDA machine
#
# STEP: tests renderer fit cli unwrap build (default: all, in that order). Each step's log and
# the JSON results it saved are copied to OUT (default benchmarks/results/gpu_<date>).
#   STEP_TIMEOUT=S   stop any one step after S seconds (default: no limit)
#   PHOTOS=DIR LANDMARKS=DIR   the photos the `cli` step fits (default ../shared/photos, detected
#                    landmarks), with both rasteriser backends; cli.json sums up their reports
#   FIT_ITERS=R,F    the schedule `fit` times (default 200,800; shorter ones are scaled per step)
#   FIT_BATCHES="B ..."   the batch sizes `fit` times (default "1 16 64 256")
#   BUILD_N=N BUILD_BATCH=B   photos and batch size of the `build` step (default 1500 and 256)
# Needs the
# project importable (pip install -e '.[dev,gpu]', or PYTHONPATH=. where torch with CUDA,
# nvdiffrast (diffrp-nvdiffrast) and the other dependencies are installed). The first use of
# nvdiffrast JIT-compiles its plugin (a few minutes; needs nvcc). A failing step is reported and
# the next one runs.
set -u
out=${1:-benchmarks/results/gpu_$(date +%F)}
shift || true
steps=${*:-tests renderer fit cli unwrap build}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
stamp=$(mktemp)
failed=()

run() {
  local name=$1
  shift
  echo "== $name: $*"
  local started=$SECONDS
  if ${STEP_TIMEOUT:+timeout "$STEP_TIMEOUT"} "$@" >"$out/$name.log" 2>&1; then
    echo "   ok ($((SECONDS - started)) s)"
  else
    echo "   FAILED ($((SECONDS - started)) s); last lines:"
    failed+=("$name")
  fi
  tail -n 15 "$out/$name.log" | sed 's/^/   | /'
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"; } >"$out/gpu.txt" 2>&1
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  >>"$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
for step in $steps; do
  case $step in
    tests) run tests "$py" -m pytest -q -rs tests/test_renderer_nvdiffrast.py ;;
    renderer) run renderer "$py" benchmarks/bench_renderer.py --device cuda --max-batch 256 ;;
    fit) run fit "$py" benchmarks/bench_fit.py --device cuda --batch ${FIT_BATCHES:-1 16 64 256} --backend torch nvdiffrast \
           --iters "${FIT_ITERS:-200,800}" ;;
    cli) fits=$(mktemp -d)  # the fits themselves stay out of OUT; cli.json sums them up
         run cli bash -c 'for b in torch nvdiffrast; do
           "$0" -m fitting.cli fit "$1" ${2:+--landmarks "$2"} --out "$3/fits_$b" --device cuda \
             --batch-size 16 --backend $b || exit; done
           "$0" benchmarks/summarize_fits.py "$3"/fits_* --out "$4/cli.json"' \
           "$py" "${PHOTOS:-../shared/photos}" "${LANDMARKS:-}" "$fits" "$out" ;;
    unwrap) run unwrap "$py" benchmarks/bench_texture_space.py --unwrap --device cuda ;;
    build) run build "$py" benchmarks/bench_build.py --n "${BUILD_N:-1500}" --device cuda \
             --batch-size "${BUILD_BATCH:-256}" ;;
    *) echo "unknown step '$step' (tests renderer fit cli unwrap build)"; failed+=("$step") ;;
  esac
done
find benchmarks/results -maxdepth 1 -name '*.json' -newer "$stamp" -exec cp {} "$out" \;
rm -f "$stamp"
echo "results in $out${failed:+; failed: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
