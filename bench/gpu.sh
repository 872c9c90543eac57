#!/usr/bin/env bash
# The GPU checks in one command, run from anywhere (it works from the repository root):
#   (a) the GPU-marked tests,
#   (b) one training epoch at the study's size (N 128, gridsize 2, 512 groups, batch 16),
#       ours against a bare PyTorch loop, with the step breakdown (bench/train_throughput.py),
#   (c) bench/learning.py at N 128: dose 1e5, ptychopinn, seed 1, gridsize 1 and 2.
# Each step has its own time limit; together they stay under 8 minutes. A missing venv is
# made first with `make setup` (pass TORCH_SPEC in the environment for a CUDA index).
#
#   bench/gpu.sh                   on a CUDA host
#   bench/gpu.sh --cpu-dry-run     on any host: every step shrunk to seconds on the CPU,
#                                  (a) skipped; GPU_BENCH_DRY_RUN=1 does the same
#   GPU_BENCH_OUT=DIR bench/gpu.sh keep learning.json in DIR (default: a new /tmp folder)
set -uo pipefail

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }

dry=${GPU_BENCH_DRY_RUN:-0}
for arg in "$@"; do
    case $arg in
        --cpu-dry-run) dry=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
if [[ ! -e .venv/.installed ]]; then
    make setup || exit 1
fi
python=.venv/bin/python

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi
fi

if [[ $dry == 1 ]]; then
    echo "CPU dry run: tiny settings, no GPU tests"
    # The CPU is shared: one thread, and the GPU hidden so that "auto" means the CPU.
    export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1
    device=(--device cpu --threads 1)
    throughput=(--positions 300 --n-groups 12 --batch-size 4)
    learning=(--positions 200 --epochs 1 --n-groups 8 --accelerator cpu --threads 1)
else
    if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "torch sees no CUDA device; reinstall with a CUDA build, e.g." >&2
        echo "  rm -rf .venv && make setup TORCH_SPEC=\"torch==2.13.0 --index-url <CUDA index>\"" >&2
        echo "or try the script with --cpu-dry-run" >&2
        exit 1
    fi
    "$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda,
        "on", torch.cuda.get_device_name(0))'
    device=(--device cuda)
    throughput=(--positions 2000 --n-groups 512 --batch-size 16)
    # Fewer positions than (b): the test split is stitched on the CPU after each run, and
    # at 2,000 positions that alone could take a minute.
    learning=(--positions 1000 --max-minutes 1.25 --accelerator gpu)
fi

out=${GPU_BENCH_OUT:-$(mktemp -d /tmp/ptychojobs-gpu-bench.XXXXXX)}
mkdir -p "$out"

failed=()
step() {
    local name=$1 limit=$2
    shift 2
    echo
    echo "== $name (limit ${limit} s)"
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "== $name: ran past ${limit} s, stopped"
    fi
    echo "== $name: exit $rc after $((SECONDS - started)) s"
    ((rc == 0)) || failed+=("$name")
}

total=$SECONDS
if [[ $dry == 1 ]]; then
    echo
    echo "== gpu tests: skipped in the CPU dry run"
else
    step "gpu tests" 90 .venv/bin/pytest -m gpu -q
fi

# No --assess: the test assessment is CPU-bound stitching; (c) shows its cost in wall time.
step "epoch at N 128, gridsize 2" 100 "$python" bench/train_throughput.py \
    --sizes 128 --gridsizes 2 --epoch "${throughput[@]}" "${device[@]}"

step "learning at N 128" 270 "$python" bench/learning.py \
    --patch-size 128 --doses 1e5 --architectures ptychopinn --seeds 1 --gridsizes 1 2 \
    --json "$out/learning.json" "${learning[@]}"

echo
echo "all steps in $((SECONDS - total)) s; learning table in $out/learning.json"
if ((${#failed[@]})); then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all steps passed"
