#!/bin/sh
# The shipped atlas/weights/cifarnet-generator.pt: a DeePSiM-family generator (code 256) trained
# together with its own encoder (`--encoder own`), with the CIFAR-10 network's features.relu5 as
# the comparator of the feature loss, on 49,000 CIFAR-10 training photos (512 more held out),
# 5 epochs of batch 32 (7,655 steps); about 14 minutes on this 2-core CPU (2 threads).
# Held-out reconstruction MSE 0.0113 (the fc6 generator, scripts/train_cifarnet_fc6_generator.sh:
# 0.047). Why it replaced the fc6 generator: notes/priors.md (2026-11-26).
DATA=${CIFAR10:-../shared/data/cifar10}
exec python -m atlas train-generator --threads 2 --model cifarnet --data "$DATA/train" --encoder own --code-dim 256 \
  --images 49000 --held-out 512 --epochs 5 --batch-size 32 --lr 1e-3 --l-img 1.0 --l-feat 0.01 --l-adv 0.001 \
  --out atlas/weights/cifarnet-generator.pt --work-dir /tmp/cifarnet-generator.work "$@"
