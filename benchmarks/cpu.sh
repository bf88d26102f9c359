#!/usr/bin/env bash
# The CPU figures of the README's benchmark block, in one script (issue 10). Run it on a quiet machine —
# nothing else running — then regenerate the block:
#
#   bash benchmarks/cpu.sh [OUT_DIR]          # default docs/results; ~42 minutes on the 2-core development machine
#   video-ats benchmark report docs/results/benchmark_*.json --readme README.md
#
# Fewer rounds than the defaults (--repeats 3, 4 pattern clips a round) so the whole set fits in about 40 minutes;
# rows reach each JSON file as they are measured, so a run cut short keeps what it finished.
set -u -o pipefail
out=${1:-docs/results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
keep="uniform skewed benchmarks/keep_patterns/bench_accuracy_ats.keep"
common="--threads 2 --pattern-clips 4"   # and --repeats 3, or 9 at batch 1 (cheap: more rounds)
command -v video-ats >/dev/null || { echo "video-ats not found: activate the environment it was installed in" >&2; exit 2; }
status=0
run() {  # run FILE ARGS...
  local name=$1 rc; shift
  echo "== $(date +%T) $name: video-ats benchmark $*"
  video-ats benchmark "$@" --json "$out/$name.json"
  rc=$?
  echo "== $(date +%T) $name: exit $rc"
  [ $rc -eq 0 ] || status=$rc
}
run benchmark_1_timesformer_cpu_batch1 --batch 1 --keep-pattern $keep $common --repeats 9
run benchmark_2_timesformer_cpu_batch8 --batch 8 --keep-pattern $keep $common --repeats 3 --no-official --no-memory
run benchmark_3_xvit_cpu model.name=xvit_b16_16x224 model.num_classes=600 --batch 1 8 --keep-pattern $keep $common --repeats 3 --no-memory
# batch 8 again with glibc keeping freed memory: by default every tensor above 32 MB is a fresh mmap whose pages
# fault in on first touch (docs/speed_benchmark.md, "The memory allocator")
malloc="MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736"
echo "== $(date +%T) benchmark_2b/3c with $malloc"
env $malloc video-ats benchmark --batch 8 --keep-pattern $keep $common --repeats 3 --no-official --no-memory \
  --json "$out/benchmark_2b_timesformer_cpu_batch8_malloc.json" || status=$?
env $malloc video-ats benchmark model.name=xvit_b16_16x224 model.num_classes=600 --batch 8 --keep-pattern $keep \
  $common --repeats 3 --no-memory --json "$out/benchmark_3c_xvit_cpu_batch8_malloc.json" || status=$?
# the rate of the blocks' matrix products over row counts: why batch 1 (few kept rows) is less efficient than batch 8
echo "== $(date +%T) benchmark_3b_matmul_cpu"
video-ats benchmark matmul --threads 2 --json "$out/benchmark_3b_matmul_cpu.json" || status=$?
run benchmark_4_timesformer_train_cpu --train --batch 4 --keep-pattern uniform skewed $common --repeats 3 --no-memory
run benchmark_5_timesformer_bf16_cpu --amp bf16 --batch 1 --keep-pattern uniform skewed $common --repeats 3 --no-official --no-memory
# regional torch.compile (each block's norms and MLP; attention and token bookkeeping eager): same runners, compiled
run benchmark_5b_timesformer_cpu_compile_blocks --batch 1 --keep-pattern uniform skewed $common --repeats 3 --compile blocks --no-official --no-memory
echo "== $(date +%T) benchmark_9_data"
video-ats benchmark data --json "$out/benchmark_9_data.json"
rc=$?
echo "== $(date +%T) benchmark_9_data: exit $rc"
[ $rc -eq 0 ] || status=$rc
exit $status
