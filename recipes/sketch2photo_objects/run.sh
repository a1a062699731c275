#!/usr/bin/env bash
# Reproduce imgan's embedded sketch2photo default, imgan/weights/imgan-sketch2photo.safetensors.
#
#   bash recipes/sketch2photo_objects/run.sh [DATA_DIR] [RUN_DIR]
#
# 1. fetch Tux Paint's object stamps from Debian and frame them on white (nothing is committed),
# 2. train pix2pix through `imgan train` on pairs made by imgan's own edge detector
#    (the one `imgan sketch2photo --from-photo` uses), a 16-feature U-Net at 256 px,
# 3. export the generator in float16 with its metadata.
# On the 2-core development machine step 2 takes about an hour on the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-$HOME/.cache/imgan-data}"
run="${2:-runs/sketch-objects}"

python recipes/sketch2photo_objects/prepare_data.py "$data" 256

imgan train pix2pix --edges-from "$data/objects/train" --val "$data/objects/val" --out "$run" \
    --features 16 --load-size 286 --crop 256 --batch-size 2 --steps 20000 --decay-steps 10000 \
    --workers 1 --seed 0 --log-every 500 --val-every 2000 --sample-every 2000 --save-every 2000

imgan train export "$run" --half --out "$run/imgan-sketch2photo.safetensors"
echo "to ship it: cp $run/imgan-sketch2photo.safetensors imgan/weights/ and update its digest in pretrained.toml"
