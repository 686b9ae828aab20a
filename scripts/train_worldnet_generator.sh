#!/bin/sh
# The shipped atlas/weights/worldnet-generator.pt: DeePSiM-family generator inverting the world
# network's ReLU'd fc6 (classifier.relu6, 128-d), comparator features.relu5. 8 epochs of 16000
# world images (seed 1), 4000 steps; about 10 minutes of one busy CPU thread (614 s of training).
exec nice -n 5 python -m atlas train-generator --threads 1 --model worldnet --images 16000 --held-out 512 \
  --epochs 8 --batch-size 32 --lr 1e-3 --l-img 1.0 --l-feat 0.1 --l-adv 0.01 \
  --out atlas/weights/worldnet-generator.pt --work-dir /tmp/worldnet-generator.work "$@"
