#!/usr/bin/env bash
# The GPU paths, checked in one go on a CUDA machine (under 8 minutes on one modern GPU):
#   1. the GPU tests (pytest -m gpu: compressors on CUDA, the DDP hook with gloo over CUDA
#      tensors, the model zoo on CUDA);
#   2. the compressor benchmark on CUDA (quick);
#   3. `rsdgc-sim run` on the quickstart with device: cuda (and [cuda:0, cuda:1] where two
#      GPUs exist);
#   4. the DDP hook over NCCL: examples/torchrun_train.py on every GPU (two or more);
#   5. the device-model estimate against the measured profile on this GPU.
# Prints one summary table at the end; every step's output goes to $LOG_DIR.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, after `make install`
#   PY=python bash benchmarks/gpu_check.sh  # another interpreter (default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOG_DIR=${LOG_DIR:-$(mktemp -d -t rsdgc-gpu-check.XXXX)}
export RSDGC_SIM_CACHE=${RSDGC_SIM_CACHE:-$LOG_DIR/cache}

gpus=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "${gpus:-0}" -lt 1 ]; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check"
    exit 0
fi
"$PY" -c "import torch; [print(f'cuda:{i}', torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

declare -a names results times
step() {  # step NAME COMMAND...: run it, log it, remember the outcome
    local name=$1; shift
    local log="$LOG_DIR/$(echo "$name" | tr ' /:[],' '______').log"
    local t0=$SECONDS
    echo "== $name: $*"
    if "$@" >"$log" 2>&1; then results+=("ok"); else results+=("FAILED (rc $?)"); fi
    names+=("$name"); times+=("$((SECONDS - t0))")
    tail -n 25 "$log"
}

scenario() {  # scenario DEVICE FILE: the quickstart with another device
    "$PY" - "$1" "$2" <<'EOF'
import sys, yaml
from rsdgc_sim.scenario import bundled_path
data = yaml.safe_load(bundled_path().read_text())
data["device"] = yaml.safe_load(sys.argv[1])
open(sys.argv[2], "w").write(yaml.safe_dump(data))
EOF
}

step "pytest -m gpu" "$PY" -m pytest -q -m gpu -p no:cacheprovider
step "compressors on cuda" "$PY" benchmarks/compressors.py --device cuda --quick
scenario cuda "$LOG_DIR/quickstart_cuda.yaml"
step "run device cuda" "$PY" -m rsdgc_sim.cli run "$LOG_DIR/quickstart_cuda.yaml" --out "$LOG_DIR/run_cuda"
if [ "$gpus" -ge 2 ]; then
    scenario "[cuda:0, cuda:1]" "$LOG_DIR/quickstart_2gpu.yaml"
    step "run device [cuda:0, cuda:1]" "$PY" -m rsdgc_sim.cli run "$LOG_DIR/quickstart_2gpu.yaml" --out "$LOG_DIR/run_2gpu"
    for c in none topk nsi dgc; do
        step "nccl hook $c x$gpus" "$PY" -m torch.distributed.run --standalone --nproc-per-node "$gpus" \
            examples/torchrun_train.py --model resnet18 --input-size 64 --compressor "$c" --steps 30
    done
else
    names+=("nccl hook"); results+=("skipped: one GPU (pytest -m gpu ran the hook with gloo over CUDA tensors)"); times+=(0)
fi
name=$("$PY" -c "import torch; n = torch.cuda.get_device_name(0); print(\"A100-SXM-80GB\" if \"A100\" in n else \"V100-SXM2\" if \"V100\" in n else \"L4\" if \"L4\" in n else \"H100-SXM\")")
step "estimate ($name) vs measured" "$PY" benchmarks/estimate_vs_measured.py --device cuda --model "$name"

echo
echo "gpu_check summary ($(date -u +%Y-%m-%dT%H:%MZ), logs in $LOG_DIR)"
printf '%-34s %-8s %s\n' "step" "seconds" "result"
for i in "${!names[@]}"; do
    printf '%-34s %-8s %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
done
for r in "${results[@]}"; do case "$r" in FAILED*) exit 1;; esac; done
exit 0
