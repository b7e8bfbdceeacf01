#!/usr/bin/env bash
# The GPU checks and figures in one device run of about 6 minutes (the device budget is 15 minutes a
# session). Prepare here first (`bash benchmarks/gpu/prepare.sh`), then with the device tool:
#
#   run(command="bash benchmarks/gpu/run.sh", carry=[".whl", ".gpu_data"], timeout_s=600)
#
# Its logs, JSON and plots come back as one archive, $OUT/gpu_results.tgz. CPU and CUDA runs
# of the same benchmark go side by side on the machine's 16 cores, one torch thread each, so their ratio is from one run.
# `DEVICE=cpu ACAS='1_1_batch_2000-prop_1$' XAI_NS=8 bash benchmarks/gpu/run.sh` is a quick dry run
# of the script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/hdsl-gpu-out}
RES=/tmp/hdsl-gpu-results  # packed into one file at the end: only 8 files come back from $OUT
rm -rf "$RES" && mkdir -p "$OUT" "$RES"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ! python3 -c "import lark, z3" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null; python3 -c \
  "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$RES/machine.txt"

step() { echo; echo "== $1 ($(date +%T))"; }

step "1. CUDA agreement tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_device_placement.py tests/test_bounds_soundness.py \
  tests/test_hierarchy_analytic.py 2>&1 | tail -15 | tee "$RES/tests.txt"

step "2. ACAS Xu, the slow instances: CPU and $DEVICE side by side"
ACAS=${ACAS:-'(4_2|3_3|1_1)_batch_2000-prop_2$|1_1_batch_2000-prop_(3|6)$|3_3_batch_2000-prop_9$'}
if [ -d .gpu_data/acasxu ]; then
  HDSL_DEVICE=cpu timeout 420 python3 benchmarks/acasxu.py .gpu_data/acasxu --only "$ACAS" \
    --out "$RES/acas_cpu.jsonl" > "$RES/acas_cpu.txt" 2>&1 &
  HDSL_DEVICE=$DEVICE timeout 420 python3 benchmarks/acasxu.py .gpu_data/acasxu --only "$ACAS" \
    --out "$RES/acas_dev.jsonl" > "$RES/acas_dev.txt" 2>&1 &
else
  echo "no .gpu_data/acasxu: run benchmarks/gpu/prepare.sh here first"
fi

step "3. Hierarchy case study (10 images, 1 and 2/255, splitting on 5): CPU and $DEVICE side by side"
CASE=(--n 10 --eps 1,2 --complete-n 5 --timeout 5 --radius-n 0 --ladders naive,lambda,split)
HDSL_DEVICE=cpu timeout 420 python3 benchmarks/hierarchy_case_study.py "${CASE[@]}" --out "$RES/case_cpu.json" \
  --plot "$RES/case_cpu.png" > "$RES/case_cpu.txt" 2>&1 &
HDSL_DEVICE=$DEVICE timeout 420 python3 benchmarks/hierarchy_case_study.py "${CASE[@]}" --out "$RES/case_dev.json" \
  --plot "$RES/case_dev.png" > "$RES/case_dev.txt" 2>&1 &

step "4. XAI metric throughput: hdsl on $DEVICE, Quantus on the CPU"
for n in ${XAI_NS:-50 500}; do
  timeout 200 python3 benchmarks/xai_throughput.py --n $n --threads 1 --repeat 2 --device "$DEVICE" 2>&1 \
    | tail -8 | tee "$RES/xai_$n.txt"
done

step "waiting for the side-by-side runs"
wait
for f in acas_cpu acas_dev; do [ -f "$RES/$f.txt" ] && { echo "-- $f"; tail -12 "$RES/$f.txt"; }; done
for f in case_cpu case_dev; do echo "-- $f"; grep -E "CPU|wall|replayed|^\| [0-9]" "$RES/$f.txt" | tail -14; done
tar czf "$OUT/gpu_results.tgz" -C "$RES" .
step "done: $OUT/gpu_results.tgz"
