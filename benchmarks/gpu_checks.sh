#!/usr/bin/env bash
# Every check that needs a GPU, in one go: the nvdiffrast tests, then the GPU figures of the
# renderer, the fit, unwrapping and an end-to-end texture-space build of 1500 photos.
#
#   benchmarks/gpu_checks.sh [OUT] [STEP ...]     # from the repository root, on a CUDA machine
#
# STEP: tests renderer fit unwrap build (default: all, in that order). Each step's log and the
# JSON results it saved are copied to OUT (default benchmarks/results/gpu_<date>). Needs the
# project importable (pip install -e '.[dev,gpu]', or PYTHONPATH=. where torch with CUDA,
# nvdiffrast (diffrp-nvdiffrast) and the other dependencies are installed). The first use of
# nvdiffrast JIT-compiles its plugin (a few minutes; needs nvcc). A failing step is reported and
# the next one runs.
set -u
out=${1:-benchmarks/results/gpu_$(date +%F)}
shift || true
steps=${*:-tests renderer fit unwrap build}
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
  if "$@" >"$out/$name.log" 2>&1; then
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
    fit) run fit "$py" benchmarks/bench_fit.py --device cuda --batch 1 16 64 256 --backend torch nvdiffrast ;;
    unwrap) run unwrap "$py" benchmarks/bench_texture_space.py --unwrap --device cuda ;;
    build) run build "$py" benchmarks/bench_build.py --n 1500 --device cuda --batch-size 64 ;;
    *) echo "unknown step '$step' (tests renderer fit unwrap build)"; failed+=("$step") ;;
  esac
done
find benchmarks/results -maxdepth 1 -name '*.json' -newer "$stamp" -exec cp {} "$out" \;
rm -f "$stamp"
echo "results in $out${failed:+; failed: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
