#!/bin/sh
# The shipped atlas/weights/worldnet-generator.pt: a DeePSiM-family generator (code 128) trained
# together with its own encoder (`--encoder own`: an autoencoder whose ReLU'd code DGN-AM
# optimizes), with the world network's features.relu5 as the comparator of the feature loss.
# Why not the world network's own fc6 code: it carries no colour (the network was trained to
# ignore it), so a generator inverting it draws grey shapes, and DGN-AM through it saturated
# cyan/magenta fields (notes/priors.md, 2026-11-26). 12 epochs of 16000 world images (seed 1),
# 6000 steps; about 6 minutes on this 2-core CPU (2 threads).
exec python -m atlas train-generator --threads 2 --model worldnet --encoder own --code-dim 128 \
  --images 16000 --held-out 512 --epochs 12 --batch-size 32 --lr 1e-3 --l-img 1.0 --l-feat 0.01 --l-adv 0.001 \
  --out atlas/weights/worldnet-generator.pt --work-dir /tmp/worldnet-generator.work "$@"
