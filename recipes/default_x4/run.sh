#!/usr/bin/env bash
# Reproduce imgan's embedded default upscaler, imgan/weights/imgan-sr-x4.safetensors.
#
#   bash recipes/default_x4/run.sh [DATA_DIR] [RUN_DIR]
#
# 1. fetch the photo pool and the held-out sets from Debian and PyPI (nothing is committed),
# 2. train through `imgan train` (pixel loss only: the default is a PSNR model),
# 3. evaluate on Lomiri13 and Palapeli5 with the project's protocol, next to bicubic,
# 4. export the EMA generator as safetensors with its metadata.
# On the 2-core development machine step 2 takes about 40 minutes on the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-$HOME/.cache/imgan-data}"
run="${2:-runs/default-x4}"

python recipes/default_x4/prepare_data.py "$data"

imgan train srresnet --data "$data/train" --out "$run" \
    --arch srvgg --features 48 --blocks 12 --scale 4 \
    --crop 128 --batch-size 16 --steps 8000 --max-side 1536 \
    --pixel-loss l1 --perceptual 0 --lr 4e-4 --schedule cosine --warmup-steps 200 --ema 0.999 --no-ema-warmup \
    --workers 1 --seed 0 --val-every 1000 --sample-every 2000 --save-every 1000 --log-every 250

imgan train export "$run" --out "$run/imgan-sr-x4.safetensors"

for set in lomiri13 palapeli5; do
    echo "== $set"
    imgan eval --model "$run/imgan-sr-x4.safetensors" --data "$data/eval/$set" --quiet
done
echo "to ship it: cp $run/imgan-sr-x4.safetensors imgan/weights/ and update its digest in pretrained.toml"
