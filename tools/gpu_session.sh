#!/usr/bin/env bash
# One prepared command for a lent GPU machine (the device tool's `run`), in three parts:
#   1. CPU/GPU identity: tests/test_devices.py and the conformance vectors with CUDA present,
#      so every file decodes to the same latents on the CPU and the GPU (issue 3);
#   2. training from the shipped weights for FLOAT_MINUTES, then QAT for QAT_MINUTES, exported
#      as fp16 (under the 16 MiB a returned file may have), with the training log;
#   3. decode/encode speed on the GPU and on that machine's CPU (tools/bench_image.py).
# Before the call, here: bash ../shared/tools/prep-device.sh (wheels in .whl/, images/train in
# .data/), then run with carry [".whl", ".data"] and a timeout of 600 s; defaults fit in ~9 min.
# Held-out images stay held out: the 16 names hashing lowest in images/train alone include every
# image of the CPU runs' holdout that lies in images/train (split_holdout ranks by name hash).
# Afterwards, here: codec eval on Kodak with the returned weights; ship only if the BD-rate improves.
# Dry run without a GPU: SKIP_INSTALL=1 DEVICE=cpu FLOAT_MINUTES=1 QAT_MINUTES=1 OUT=/tmp/g bash tools/gpu_session.sh
set -uo pipefail
out=${OUT:-runs/gpu}
device=${DEVICE:-cuda}
float_minutes=${FLOAT_MINUTES:-4}
qat_minutes=${QAT_MINUTES:-2}
mkdir -p "$out"
if [[ -z "${SKIP_INSTALL:-}" ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "wheel install failed: run prep-device.sh"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }

stamp "identity tests"
{ nvidia-smi -L 2>&1; "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } \
    | tee "$out/machine.txt"
"$python" -m pytest -q -rs -p no:cacheprovider tests/test_devices.py tests/test_model_vectors.py \
    2>&1 | tee "$out/identity.log"

if (( float_minutes + qat_minutes > 0 )); then
    checkpoints=$(mktemp -d)
    common=(--data .data/images/train --checkpoint-dir "$checkpoints" --device "$device"
            --batch "${BATCH:-8}" --crop "${CROP:-320}" --rate-balance 0.7 --steps 100000000
            --eval-every "${EVAL_EVERY:-1000}" --save-every 1000)
    stamp "float training, $float_minutes min"
    "$python" tools/train_image.py "${common[@]}" --lr "${LR:-5e-5}" --time-limit "$float_minutes" \
        --init codec/models/weights/image-mref-v1.safetensors 2>&1 | tee "$out/train-float.log" \
        | grep -v "^step " || true
    stamp "QAT, $qat_minutes min"
    "$python" tools/train_image.py "${common[@]}" --qat --lr 1e-5 --time-limit "$qat_minutes" \
        --export "$checkpoints/image-gpu.safetensors" 2>&1 | tee "$out/train-qat.log" \
        | grep -v "^step " || true
    cp "$checkpoints/log.jsonl" "$out/train-log.jsonl"
    if [[ -f "$checkpoints/image-gpu.safetensors" ]]; then
        stamp "fp16 export"
        "$python" tools/ship_weights.py "$checkpoints/image-gpu.safetensors" \
            --out "$out/image-gpu.safetensors" --hardware "$(head -1 "$out/machine.txt")" \
            --schedule "from the shipped weights: float lr ${LR:-5e-5} ${float_minutes} min, QAT lr 1e-5 ${qat_minutes} min, batch ${BATCH:-8}, ${CROP:-320}² crops, images/train only"
    fi
fi

stamp "speed"
"$python" tools/bench_image.py --device "$device" --repeats 7 --skip-large > "$out/bench-$device.json"
"$python" tools/bench_image.py --device cpu --repeats 3 --skip-large > "$out/bench-cpu.json"
cat "$out"/bench-*.json
stamp "done"
