#!/usr/bin/env bash
# Everything mgfast checks on a lent GPU machine, in one call (the lease is short):
#   1. build the package there with CUDA (sm_90), without oneDNN (not in that image);
#   2. the CUDA tests (pytest -m cuda: every CPU-vs-CUDA comparison of the test suite), and the GPU
#      inference engine's (tests/test_engine_gpu.py) and `mgfast bench --device cuda:0` for the
#      paper's network (random weights), the shipped mgfast_fcn and mgfast_multi, fp32 and fp16;
#   3. bench/gpu_kernels.py and bench/simulate_throughput.py: CUDA against the CPU, same run;
#   4. train mgfast_fcn (from .gpu/init.keras when present) and the paper's network (from scratch,
#      at its public code's rate, on idealised data made by the GPU simulator) side by side for
#      TRAIN_S and PAPER_S seconds;
#   5. evaluate both and the matched filter on the fixed idealised and realistic test sets.
# Results land in $OUT (at most 8 files come back): log.txt, bench.md, eval.tgz, fcn.tgz and the
# paper network's weights in 15 MB parts.
#
#   bash scripts/gpu_session.sh [TRAIN_S]      (carry .whl with keras, namex, optree; .gpu/init.keras)
#   STAGES="tests kernels" bash scripts/gpu_session.sh    (a subset of: tests engine kernels numpy rates train eval)
set -uo pipefail
OUT=${OUT:-/tmp/mgfast-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
TRAIN_S=${1:-270}
BENCH_N=${BENCH_N:-20000}
EVAL_N=${EVAL_N:-10000}
STAGES=${STAGES:-tests engine kernels numpy train eval}
want() { [[ " $STAGES " == *" $1 "* ]]; }
T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0)) s] $*"; }
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax MGFAST_COMMIT=${MGFAST_COMMIT:-unknown}
export PATH="$PATH:/usr/local/cuda/bin"

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
nproc
python3 -V

say "wheels"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi

if ! python3 -c "import keras; keras.ops.convert_to_numpy(keras.ops.ones(3))" >/dev/null 2>&1; then
  echo "Keras on JAX does not run here: training with Keras on PyTorch instead"
  export KERAS_BACKEND=torch
fi

say "build (CUDA on, oneDNN off)"
if ! MGFAST_CUDA=ON MGFAST_ONEDNN=OFF CMAKE_BUILD_PARALLEL_LEVEL=16 python3 -m pip install . \
  --no-build-isolation --no-deps -q --target /tmp/mg >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi
export PYTHONPATH="/tmp/mg:${PYTHONPATH:-}"
python3 -c "import mgfast; print('mgfast', mgfast.__version__, 'devices', mgfast.cuda_device_count())" || exit 1

want tests && say "CUDA tests"
want tests && timeout 240 python3 -m pytest tests -q -p no:cacheprovider -m cuda -rs 2>&1 | tail -25
want tests && MGFAST_EXPECT_CUDA_BUILD=1 timeout 60 python3 -m pytest tests/test_build.py -q -p no:cacheprovider 2>&1 | tail -3

if want engine; then
  say "GPU inference engine: tests against ONNX Runtime, then mgfast bench"
  python3 -c "import mgfast._gpu as g; print(g.library_versions())" || tail -30 "$OUT/build.log"
  timeout 300 python3 -m pytest tests/test_engine_gpu.py -q -p no:cacheprovider -rs -x 2>&1 | tail -30
  python3 -c "from mgfast import model as mm; mm.write_random_model('/tmp/paper-random', 'bycycle2023', seed=7)"
  for m in /tmp/paper-random default multi; do
    for prec in fp32 fp16; do
      timeout 120 python3 -m mgfast bench --device cuda:0 --model "$m" --precision $prec --n "${ENGINE_N:-65536}" \
        --batch "${ENGINE_BATCH:-2048}" --repeat 2 --no-onnxruntime 2>&1 | tee -a "$OUT/engine.md"
    done
  done
fi

want kernels && say "kernels: CUDA against CPU"
want kernels && timeout 150 python3 bench/gpu_kernels.py --n "$BENCH_N" --repeat 3 | tee "$OUT/bench.md"
want numpy && timeout 60 python3 bench/simulate_throughput.py --n "$((BENCH_N / 7))" --repeat 2 | tee -a "$OUT/bench.md"

if want rates; then
  say "rates: what the GPU can train on, and what the simulator can feed it"
  timeout 120 python3 bench/train_throughput.py --batch 512 --steps 40 | tee -a "$OUT/bench.md"
  timeout 60 python3 bench/gpu_kernels.py --n 60000 --repeat 2 --only simulate | tee -a "$OUT/bench.md"
  for dev in cpu cuda:0; do
    timeout 60 python3 bench/data_throughput.py --device $dev --batch 512 --group 64 \
      --producers 2 --threads 8 --seconds 15 | tee -a "$OUT/bench.md"
  done
fi
want train || { ls -la "$OUT"; say "done"; exit 0; }
# The paper's network trains on the paper's idealised spectra, which the GPU simulator makes
# faster than 16 CPU cores (docs/BENCHMARKS.md); mgfast_fcn's batches are half Realism.survey(),
# which the CPU makes faster. Override with FCN_DATA / PAPER_DATA.
GPU_DATA=cpu
[ "$(python3 -c 'import mgfast; print(mgfast.cuda_device_count())')" -gt 0 ] && GPU_DATA=cuda:0
FCN_DATA=${FCN_DATA:-cpu}
PAPER_DATA=${PAPER_DATA:-$GPU_DATA}
PAPER_S=${PAPER_S:-$TRAIN_S}
say "training side by side: mgfast_fcn $TRAIN_S s (data on $FCN_DATA), bycycle2023 $PAPER_S s (data on $PAPER_DATA)"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p runs
INIT=""
[ -f .gpu/init.keras ] && INIT="--init .gpu/init.keras"
python3 training/train.py --arch mgfast_fcn --steps 1000000 --batch 512 --lr 1e-3 --seed 5051 \
  $INIT --max-seconds "$TRAIN_S" --data-threads 6 --producers 2 --data-device "$FCN_DATA" \
  --ckpt-every 5000 --eval-every 100000 --out runs/fcn-gpu >runs/fcn.log 2>&1 &
FCN=$!
python3 training/train.py --arch bycycle2023 --steps 100000000 --batch 500 --seed 6061 \
  --lr 1e-3 --realistic-fraction 0 --max-seconds "$PAPER_S" --data-threads 4 --producers 2 \
  --data-device "$PAPER_DATA" --data-group 64 --ckpt-every 1000000 --eval-every 100000000 \
  --out runs/paper-gpu >runs/paper.log 2>&1 &
PAPER=$!
sleep 30
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
wait $FCN
echo "fcn exit $?"
tail -8 runs/fcn.log
wait $PAPER
echo "paper exit $?"
tail -8 runs/paper.log

say "packing the trained networks"
[ -d runs/fcn-gpu ] && tar czf "$OUT/fcn.tgz" -C runs fcn-gpu/final.keras fcn-gpu/config.json fcn-gpu/log.csv
[ -f runs/paper-gpu/final.keras ] && split -b 15M -d runs/paper-gpu/final.keras "$OUT/paper.keras.part"

say "evaluation on the fixed test sets"
MODELS=()
[ -f runs/fcn-gpu/final.keras ] && MODELS+=(--model runs/fcn-gpu/final.keras --arch mgfast_fcn --name mgfast_fcn-gpu)
[ -f runs/paper-gpu/final.keras ] && MODELS+=(--model runs/paper-gpu/final.keras --arch bycycle2023 --name bycycle2023-gpu)
mkdir -p eval
cp runs/*.log eval/ 2>/dev/null
for r in fcn-gpu paper-gpu; do
  [ -d runs/$r ] && cp runs/$r/log.csv eval/$r-log.csv && cp runs/$r/config.json eval/$r-config.json
done
if [ ${#MODELS[@]} -gt 0 ]; then
  timeout 150 python3 training/evaluate.py "${MODELS[@]}" --matched-filter --n-per-snr "$EVAL_N" \
    --json eval/ideal.json >eval/ideal.md 2>&1
  grep -A20 "^#### " eval/ideal.md | grep -E "^####|^\| all|FPR 1.0%"
  tar czf "$OUT/eval.tgz" eval
  timeout 120 python3 training/evaluate.py "${MODELS[@]}" --matched-filter --n-per-snr "$EVAL_N" \
    --realistic --json eval/realistic.json >eval/realistic.md 2>&1
  grep -A20 "^#### " eval/realistic.md | grep -E "^####|^\| all|FPR 1.0%"
fi
tar czf "$OUT/eval.tgz" eval
ls -la "$OUT"
say "done"
