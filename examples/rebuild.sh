#!/bin/sh
# Rebuilds examples/soul.onnx from the seed's corpus (read in place, beside the checkout).
# Needs `pip install '.[train]'`. One thread; about 20 minutes of CPU time. Run from anywhere.
set -e
cd "$(dirname "$0")/.."
soulc train ../shared/seed/corpus.txt -o examples/soul.onnx --vocab 128 --layers 2 --width 28 --heads 4 --ffn 64 --context 32 --epochs 300 --batch 64 --lr 0.01 --eval-every 30 --seed 0 --threads 1
