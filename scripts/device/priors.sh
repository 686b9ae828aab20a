#!/bin/bash
# Issue 17's GPU work in one call of the device tool (an H100/H200 lent for a few minutes):
# the CIFAR-10 ResNet judge and three DGN-AM priors for CIFAR-10, trained side by side.
# Expects (carried inside the repository, see notes/priors.md):
#   $G/code  : a copy of this checkout's atlas/ and scripts/ (the weights come from the tree)
#   $G/data  : train.{bin,offsets.npy,names.json} and test.* (scripts/device/pack_images.py)
# Writes to $OUT: the weight files and logs.tgz (logs and sample sheets).
# SMALL=1 runs everything with tiny sizes on the CPU (to check this script before a device call).
set -u
G=${G:-$(pwd)/.gpu-priors}
C=$G/code
T=${TMPDIR:-/tmp}/priors-device
OUT=${OUT:?set OUT}
mkdir -p "$T/logs" "$OUT"
cp -n atlas/weights/cifarnet.pt "$C/atlas/weights/" 2>/dev/null
python3 "$C/scripts/device/pack_images.py" unpack "$G/data/train" "$T/c10/train" || exit 2
python3 "$C/scripts/device/pack_images.py" unpack "$G/data/test" "$T/c10/test" || exit 2
cd "$C" || exit 2
export PYTHONPATH=$C PYTHONUNBUFFERED=1 OMP_NUM_THREADS=3 TQDM_MININTERVAL=20
if [ "${SMALL:-0}" = 1 ]; then
  DEV=cpu; LIM=120; JT=(--train-count 640 --test-count 100 --epochs 1 --width 8 --batch-size 64)
  GT=(--images 256 --held-out 64 --epochs 3 --time-budget 1 --width 16 --fc-width 64)
  NT=(--images 256 --time-budget 5 --width 16 --fc-width 64 --d-width 8 --batch-size 16)
else
  DEV=cuda; LIM=270; JT=(--train-count 50000 --test-count 2000 --epochs 18 --width 32 --batch-size 256)
  GT=(--images 49000 --held-out 1000 --epochs 80 --time-budget 170 --width 64 --fc-width 512 --batch-size 128)
  NT=(--images 50000 --time-budget 195)
fi
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$T/logs/gpu.txt"
date -u +%T > "$T/logs/start.txt"
timeout $LIM python3 scripts/train_judge.py --dataset cifar10 --data "$T/c10" "${JT[@]}" --blocks 2 \
  --device $DEV --workers 8 --out "$OUT/cifarnet-resnet-judge.pt" > "$T/logs/judge.log" 2>&1 &
# the shipped recipe (fc6 inversion, feature 0.01, adversarial 0.001), wider and longer
timeout $LIM python3 -m atlas train-generator --model cifarnet --data "$T/c10/train" "${GT[@]}" \
  --l-feat 0.01 --l-adv 0.001 --device $DEV --out "$OUT/gen-wide.pt" --work-dir "$T/gen-wide.work" \
  > "$T/logs/gen-wide.log" 2>&1 &
# the same with a 10x adversarial weight (sharper, if the discriminator can teach it)
timeout $LIM python3 -m atlas train-generator --model cifarnet --data "$T/c10/train" "${GT[@]}" \
  --l-feat 0.01 --l-adv 0.01 --device $DEV --out "$OUT/gen-adv.pt" --work-dir "$T/gen-adv.work" \
  > "$T/logs/gen-adv.log" 2>&1 &
# unconditional GANs on the photos (atlas/train/gan.py): equal learning rates, and the two time-scale rule
timeout $LIM python3 scripts/train_gan.py --data "$T/c10/train" "${NT[@]}" --device $DEV \
  --out "$OUT/gan.pt" --work-dir "$T/gan.work" > "$T/logs/gan.log" 2>&1 &
timeout $LIM python3 scripts/train_gan.py --data "$T/c10/train" "${NT[@]}" --lr 1e-4 --lr-d 4e-4 --device $DEV \
  --out "$OUT/gan-ttur.pt" --work-dir "$T/gan-ttur.work" > "$T/logs/gan-ttur.log" 2>&1 &
wait
date -u +%T > "$T/logs/end.txt"
tail -n 3 "$T"/logs/*.log
(cd "$T" && tar czf "$OUT/logs.tgz" logs gen-wide.work/samples gen-adv.work/samples gan.work gan-ttur.work 2>/dev/null)
ls -la "$OUT"
