#!/usr/bin/env bash
# Train on a GPU machine reached by copying files (the `device` tool of our workplace: the working tree travels, 64 MiB
# a call, 10 minutes a command; the files written under $OUT come back). One prepared command, tried here first at a
# few steps on the CPU. The machine's python3 has PyTorch but not enliven: it runs from src/, without MediaPipe or
# dlib, which training on stored landmarks does not need.
#
#   here, once:  enliven data pack ~/enliven-data/faces .device-data/faces --splits train   # 15 MB video, 28 MB marks
#                echo /.device-data/ >> .git/info/exclude
#   here, tiny:  OUT=/tmp/device-out bash scripts/device_train.sh configs/lite2-faces.yaml .device-data/faces 3
#   there:       command "bash scripts/device_train.sh configs/lite2-faces.yaml .device-data/faces 6000",
#                carry [".device-data"] (and "runs/device" to go on from a run brought back)
#   back here:   cp -r <files_at>/run runs/device   # then the same command again resumes it, exactly
#
# Arguments: CONFIG DATASET STEPS [RUN_DIR]. STEPS counts from the run's start: a run with checkpoints in RUN_DIR
# (default runs/device) resumes. $OUT receives model.safetensors (the EMA weights, `enliven release`), train.log and
# run/ (config.yaml, data.json, the latest checkpoint, the TensorBoard events): six files, under the limit of eight.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: OUT=DIR bash scripts/device_train.sh CONFIG DATASET STEPS [RUN_DIR]" >&2
    exit 2
fi
config=$1 data=$2 steps=$3 run=${4:-runs/device}
out=${OUT:?set OUT to the folder whose files come back}
python=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

resume=()
if compgen -G "$run/checkpoints/*.pt" > /dev/null; then
    resume=(--resume)
fi
"$python" -c 'import torch; print(f"torch {torch.__version__}, cuda: {torch.cuda.is_available()}")'
"$python" -m enliven train --config "$config" --data "$data" --out "$run" --max-steps "$steps" -q "${resume[@]}" \
    2>&1 | tee "$out/train.log"
"$python" -m enliven release "$run" -o "$out/model.safetensors"

mkdir -p "$out/run/checkpoints" "$out/run/tensorboard"
cp "$run/config.yaml" "$run/data.json" "$out/run/"
latest=$(ls "$run"/checkpoints/*.pt | sort | tail -n 1)
cp "$latest" "$out/run/checkpoints/"
events=$(ls "$run"/tensorboard/events.* 2> /dev/null | sort | tail -n 1 || true)
if [ -n "$events" ]; then
    cp "$events" "$out/run/tensorboard/"
fi
ls -l "$out" "$out/run/checkpoints"
