#!/bin/sh
# atlas/weights/cifarnet-fc6-generator.pt (the shipped generator until 2026-11-26): DeePSiM-family generator inverting the CIFAR-10
# network's ReLU'd fc6 (classifier.relu6, 256-d), comparator features.relu5, on 45000 CIFAR-10
# training photos (1000 more held out), 4 epochs of batch 64; about 12 minutes of one CPU thread.
# The feature and adversarial weights are 10x lower than the world generator's: with 0.1 / 0.01
# the generator learned textures that match relu5 and the pixel error never fell (held-out MSE
# 0.068 after 3 epochs, worse than the mean image); with 0.01 / 0.001 it reached 0.047.
# The classifier itself: python scripts/train_cifarnet.py; the fidelity judge:
# python scripts/train_cifarnet.py --seed 1 --width 24 --epochs 12 --out atlas/weights/cifarnet-judge.pt
DATA=${CIFAR10:-../shared/data/cifar10}
exec python -m atlas train-generator --threads 1 --model cifarnet --data "$DATA/train" \
  --images 45000 --held-out 1000 --epochs 4 --l-feat 0.01 --l-adv 0.001 \
  --out atlas/weights/cifarnet-fc6-generator.pt --work-dir /tmp/cifarnet-fc6-generator.work "$@"
