#!/bin/bash
# One training chunk on a lent GPU (../shared/design/gpu-training.md): the CUSP and AMGAN runs side by side
# (the GPU is far from busy with one: docs/benchmarks.md), each stopping itself in time to checkpoint,
# then their EMA weights exported to $OUT with the logs, stats, TensorBoard events and last sample grids.
# AMGAN trains with the paper's single loss weights (the D-side weights tried on CPU made it worse: its card)
# plus our four per-sign terms at the shipped file's weights (SIGN_TERMS; its card, "Edit response and tone"),
# switched on at step 3,000 (2 of 3 CPU runs with them from step 0 fell into the identity), with the tied
# map-channel kernel (without it G ignores the lip corners' channel) and edits drawn where the patch shows them
# (its card, "Tied map channels"), and, from step 3,000 too, the crop-agreement term that took G's grid lines
# out of the face (its card, "Lines on G's own grid"; from step 0 it sent a CPU run to the generative regime).
#
# Here, once (needs ../shared):
#   python -m train.pack_data --split train --size 128 --codec webp --quality 70 --out packed/gpu/utkface_train_128.safetensors
#   python -m train.amgan_placement packed/utkface_train_128.safetensors   # dlib, ~11 min; the GPU has no dlib
#   cp packed/utkface_train_128.placement.safetensors packed/gpu/     # AMGAN's zone placements (0.5 MB)
# The sign-label cache can stay here (recomputed there in seconds). Check the carry: tracked files + packed/gpu
# must stay under 64 MiB (2026-11-24: 31.5 MiB tracked + 32.1 MiB for the quality-75 pack, so 75 no longer fits).
# Then device `run`, carry ["packed/gpu"], timeout_s 600, one call after another (runs/ stays while warm):
#   bash train/gpu_chunk.sh 560 bench     # first chunk: throughput table first, then training
#   bash train/gpu_chunk.sh 570           # later chunks resume from runs/ on the machine
# A new CUSP run starts from the shipped weights (init_weights: G and E, D and optimisers fresh), so each lent
# GPU carries the shipped model on. AMGAN starts from scratch (the shipped CPU weights are a narrow net, 6,200
# CPU steps at batch 8: assets/amgan_utkface128.md) with each face's own zone placement. A machine that went cold loses
# runs/: carry the exports back (e.g. in packed/gpu/) and point INIT_W / INIT_A at them. EXTRA_W / EXTRA_A add
# overrides. The shipped AMGAN file's top-of-forehead line is drawn at G's own border and carries most of its
# old-age edit (its card, "A context margin"): a run from scratch here with EXTRA_A="net.context=16" (G never
# shows its borders; 2.2x G's cost a step) is the next thing to try. amgan.judge=achromatic was gamed on the CPU
# by bright and dark stripe pairs (its card, "An achromatic judge"), so it stays off.
# 2026-11-25 (eleventh session): a CUSP teacher for AMGAN (train/amgan_teacher.py; its card, "A CUSP teacher"):
# EXTRA_A="amgan.lambda_teacher=30 amgan.teacher_signs=true net.residual_colour=true" makes G's uniform-age edit
# match the shipped CUSP's and each zone's look match CUSP's at the sign's age; the CUSP file travels in assets/.
# On 2 CPU cores 1,300 steps from scratch (10,000 patches) removed every line but did not age faces yet (the
# card); AMGAN's GPU throughput has not been measured (the bench line above does it).
# 2026-11-24 the three chunks also ran the narrow CPU net carried on (run gn); it lost (assets/cusp_utkface128.md).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
BUDGET=$1; START=$SECONDS
D=data=packed/gpu/utkface_train_128.safetensors
SIGN_TERMS="amgan.lambda_local=1000.0 amgan.lambda_sign=5.0 amgan.lambda_edit=10.0 amgan.lambda_tone=10.0
  amgan.per_sign_from=3000 amgan.edit_covered=true net.tie_map_channels=true amgan.lambda_shift=10.0
  amgan.shift_from=3000"
mkdir -p runs "$OUT/logs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ "${2:-}" = bench ]; then
  python3 train/bench/train_throughput.py --config train/configs/cusp_128.toml --set $D --variant batch=32 \
    --variant "batch=64 amp=bf16 channels_last=true" 2>&1 | grep "|\|rror" | tee "$OUT/logs/bench_cusp_128.txt"
  python3 train/bench/train_throughput.py --config train/configs/amgan_128_cpu.toml --set $D --variant batch=32 \
    2>&1 | grep "|\|rror" | tee "$OUT/logs/bench_amgan.txt"
fi
MIN=$(python3 -c "print(round(($BUDGET - ($SECONDS - $START) - 75) / 60, 2))")  # 75 s: start-up, checkpoint, export
echo "training for $MIN minutes"
C="$D max_minutes=$MIN log_every=50 sample_every=1000 ckpt_every=1000 ema_half_life_images=10000"
python3 -m train.train --config train/configs/cusp_128.toml --run runs/gw \
  --set $C init_weights=${INIT_W:-assets/cusp_utkface128.safetensors} ${EXTRA_W:-} > runs/gw.log 2>&1 &
python3 -m train.train --config train/configs/amgan_128_cpu.toml --run runs/ga \
  --set $C batch=32 steps=12000 amgan.face_placement=true $SIGN_TERMS init_weights=${INIT_A:-} \
  ${EXTRA_A:-} > runs/ga.log 2>&1 &
wait
for r in gw ga; do
  grep -v "it/s\]" runs/$r.log | tail -3
  tail -1 runs/$r/stats.jsonl 2>/dev/null
  python3 -m train.export --run runs/$r --out "$OUT/$r.safetensors" --hardware "1x H100 80GB, shared by 2 runs" \
    $([ $r = gw ] && echo --half)  # CUSP ships as float16 (assets/cusp_utkface128.md)
done
tar czf "$OUT/logs/runs.tgz" runs/*.log runs/*/stats.jsonl runs/*/tb runs/*/config.json \
  $(for r in gw ga; do ls runs/$r/samples/*.png 2>/dev/null | tail -1; done)
echo "done after $SECONDS s"
