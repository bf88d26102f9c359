#!/usr/bin/env bash
# The GPU check of issue 10 in one script: the speed table (dense vs ATS, uniform / skewed / replayed keep
# patterns, inference and training steps, bf16 autocast, batch 1/8/32, peak memory) for TimeSformer-B 8x224
# and X-ViT-B 16x224, then the default test suite with the device-aware tests on the GPU.
#
#   bash benchmarks/gpu.sh OUT_DIR [bench|tests|all]   # writes OUT_DIR/gpu_*.json, gpu_bench.log, gpu_pytest.log
#   video-ats benchmark report OUT_DIR/gpu_*.json        # the markdown tables
#
# On an H200 (2026-12-04) the four benchmarks took ~8 minutes and the suite ~4 (8 xdist workers): run the two
# parts as separate commands where one command is limited to 10 minutes. Every step has its own time limit
# so a slow one cannot eat the others; rows reach the JSON files as they are measured, so what finished is kept.
set -u -o pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [bench|tests|all]}
part=${2:-all}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
keep="uniform skewed benchmarks/keep_patterns/bench_accuracy_ats.keep"

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } 2>&1 | tee "$out/gpu_info.txt"

bench() {  # bench LIMIT_S NAME ARGS...
  local limit=$1 name=$2; shift 2
  echo "== $name: video-ats benchmark $*" | tee -a "$out/gpu_bench.log"
  timeout "$limit" $py -m video_ats benchmark "$@" --json "$out/gpu_$name.json" 2>&1 | tee -a "$out/gpu_bench.log"
  echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$out/gpu_bench.log"
}
if [ "$part" != tests ]; then
  bench 150 timesformer_infer --device cuda --amp bf16 --batch 1 8 32 --keep-pattern $keep
  bench 150 xvit_infer model.name=xvit_b16_16x224 --device cuda --amp bf16 --batch 1 8 32 --keep-pattern $keep
  bench 150 timesformer_train model.name=timesformer_base_8x224 --device cuda --amp bf16 --train --batch 1 8 32 --keep-pattern $keep
  bench 150 xvit_train model.name=xvit_b16_16x224 --device cuda --amp bf16 --train --batch 1 8 32 --keep-pattern $keep
fi
if [ "$part" != bench ]; then
  # The default suite; the tests that take the `device` fixture run on the GPU.
  VIDEO_ATS_TEST_DEVICE=cuda timeout "${PYTEST_LIMIT:-500}" $py -m pytest -q -p no:cacheprovider -p no:benchmark \
    -n "${PYTEST_WORKERS:-8}" --dist loadfile --timeout 150 -rfE 2>&1 | tee "$out/gpu_pytest.log"
  echo "pytest exit ${PIPESTATUS[0]}" | tee -a "$out/gpu_pytest.log"
fi
