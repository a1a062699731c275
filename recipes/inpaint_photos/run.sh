#!/usr/bin/env bash
# Reproduce imgan's embedded inpainting default, imgan/weights/imgan-inpaint.safetensors.
#
#   bash recipes/inpaint_photos/run.sh [DATA_DIR] [RUN_DIR]
#
# 1. fetch the photo pool and the held-out photos from Debian and PyPI (nothing is committed),
# 2. train with imgan's inpaint trainer: a 16-feature FFC generator with 4 blocks (0.29 M weights)
#    over its coarse fills, against an SN-PatchGAN (hinge), L2 in the hole, 128 px crops with random
#    strokes and boxes covering 5-25%,
# 3. export the EMA generator in float16 with its metadata,
# 4. score it on the 18 held-out photos with `imgan eval --task inpaint`, next to Telea and NS.
# On the 2-core development machine (shared with other jobs) step 2 took about 40 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-$HOME/.cache/imgan-data}"
run="${2:-runs/inpaint-photos}"

python recipes/inpaint_photos/prepare_data.py "$data"

imgan train inpaint --data "$data/train" --val "$data/inpaint-heldout" --out "$run" \
    --features 16 --blocks 4 --crop 128 --batch-size 8 --max-side 1024 --steps 500 \
    --lr 1e-3 --lr-d 1e-4 --schedule cosine --warmup-steps 50 --gan hinge --gan-weight 0.003 \
    --pixel-loss l2 --hole-weight 1 --valid-weight 0.1 --workers 1 --seed 0 \
    --log-every 25 --val-every 100 --sample-every 100 --save-every 50

imgan train export "$run" --half --out "$run/imgan-inpaint.safetensors"
imgan eval --task inpaint --model "$run/imgan-inpaint.safetensors" --data "$data/inpaint-heldout" --quiet
echo "to ship it: cp $run/imgan-inpaint.safetensors imgan/weights/ and update its digest in pretrained.toml"
