#!/bin/bash
# One chunk of CUSP training on a lent GPU (../shared/design/gpu-training.md), carrying the shipped weights on
# toward real photos (train/configs/cusp_128_photo.toml), then the EMA weights exported to $OUT with the logs.
#
# Here, once (needs ../shared): the training split packed small enough to travel with the code:
#   python -m train.pack_data --split train --size 128 --codec webp --quality 75 --workers 2 \
#       --out packed/gpu/utkface_train_128.safetensors                            # 32 MiB
# The working tree travels too (64 MiB in all): `bash train/gpu_carry.sh hold` before the call, `restore` after.
# Then device `run` with carry ["packed/gpu"], timeout_s 600:
#   bash train/gpu_chunk.sh 585 bench   # first: training and inference throughput tables, then training
#   bash train/gpu_chunk.sh 585         # a later call on a warm machine resumes runs/cusp
# A cold machine has lost runs/: start from an exported file (INIT=path), e.g. the 2026-12-04 chunk,
# train/state/cusp_photo_4290.safetensors (assets/cusp_utkface128.md, "Tried, not shipped").
# Batch: 64, or 128 when the bench measured it at least 1.3x faster in images/s. If the fast step fails, the
# chunk falls back to the plain one (masks computed per step, fp32, batch 32) for the time left.
# EXTRA adds overrides (e.g. EXTRA="cusp.lambda_C=0.006").
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
BUDGET=$1; START=$SECONDS; ROOT=$PWD
CONFIG=train/configs/cusp_128_photo.toml
mkdir -p runs "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/bench.md"
BATCH=64
if [ "${2:-}" = bench ]; then
  FAST="amp=bf16 channels_last=true cusp.cache_masks=true cusp.photo_augment=0"
  python3 train/bench/train_throughput.py --config train/configs/cusp_128.toml --warmup 3 --steps 15 \
    --set data=packed/gpu/utkface_train_128.safetensors --variant "batch=32" \
    --variant "batch=32 cusp.cache_masks=true" --variant "batch=64 amp=bf16 channels_last=true" \
    --variant "batch=64 $FAST" --variant "batch=64 ${FAST/augment=0/augment=0.5}" --variant "batch=128 $FAST" \
    2>&1 | grep "|\|rror\|torch" | tee -a "$OUT/bench.md"
  if [ -f packed/gpu/before.tgz ]; then  # the same bench on the code before this change (before.tgz: git archive)
    mkdir -p /tmp/before && tar xzf packed/gpu/before.tgz -C /tmp/before
    (cd /tmp/before && python3 train/bench/train_throughput.py --config train/configs/cusp_128.toml --warmup 3 \
      --steps 15 --set data=$ROOT/packed/gpu/utkface_train_128.safetensors \
      cusp.classifier=$ROOT/assets/age_classifier_C.safetensors --variant "batch=32" \
      --variant "batch=64 amp=bf16 channels_last=true" 2>&1 | grep "|\|rror" | sed 's/^| /| before: /' \
      | tee -a "$OUT/bench.md")
  fi
  python3 train/bench/gpu_inference.py 2>&1 \
    | grep "|\|rror\|torch" | tee -a "$OUT/bench.md"
  BATCH=$(python3 - "$OUT/bench.md" <<'PY'
import re, sys
rate = {}
for line in open(sys.argv[1]):
    m = re.match(r"\| batch=(64|128) amp=bf16 channels_last=true cusp.cache_masks=true cusp.photo_augment=0 \| ([\d,]+) ", line)
    if m:
        rate[m[1]] = float(m[2].replace(",", ""))
print(128 if rate.get("128", 0) >= 1.3 * rate.get("64", 1e9) else 64)
PY
)
fi
train() {  # train <run> <overrides...> for the time left, leaving 100 s to start, checkpoint and export
  local min
  min=$(python3 -c "print(round(($BUDGET - ($SECONDS - $START) - 100) / 60, 2))")
  echo "training $1 for $min minutes: ${*:2}"
  python3 -m train.train --config $CONFIG --run "runs/$1" --set max_minutes=$min log_every=50 \
    init_weights=${INIT:-assets/cusp_utkface128.safetensors} "${@:2}" ${EXTRA:-} >> "runs/$1.log" 2>&1
}
RUN=cusp
if ! train cusp batch=$BATCH && ! ls runs/cusp/ckpt-* > /dev/null 2>&1 && [ $((BUDGET - (SECONDS - START))) -gt 200 ]; then
  tail -5 runs/cusp.log
  RUN=cusp_plain
  train cusp_plain batch=32 amp=none channels_last=false cusp.cache_masks=false
fi
grep -v "it/s\]" runs/$RUN.log | tail -4
tail -1 runs/$RUN/stats.jsonl
python3 -m train.export --run runs/$RUN --out "$OUT/cusp_photo.safetensors" --half --hardware "1x H200" 2>&1 | tail -1
cp runs/$RUN.log "$OUT/train.log"
tar czf "$OUT/run.tgz" runs/$RUN/stats.jsonl runs/$RUN/tb runs/$RUN/config.json runs/$RUN/samples
echo "done after $SECONDS s"
