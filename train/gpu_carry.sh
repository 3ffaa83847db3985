#!/bin/bash
# What travels to a lent GPU is the working tree (64 MiB in all, ../shared/design/gpu-training.md): the packed
# split (32 MiB) fits beside the code only without what training never reads. For the device call only:
#   bash train/gpu_carry.sh hold      # out of the index and the tree: docs/, the test photos, the AMGAN,
#                                     # estimator A and Face Mesh files (29 MiB), kept in $HOLD
#   (device run, carry ["packed/gpu"]: bash train/gpu_chunk.sh 585 bench)
#   bash train/gpu_carry.sh restore   # back in the tree, the index reset to HEAD: `git status` is as before
# Nothing is committed in between.
set -eu
HOLD=${HOLD:-/tmp/faceage_hold}
PATHS="docs train/real_photos assets/amgan_utkface128.safetensors assets/age_estimator_A.safetensors
  assets/face/face_landmark.tflite"
case "${1:-}" in
  hold)
    [ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "commit or stash your changes first"; exit 1; }
    for p in $PATHS; do
      mkdir -p "$HOLD/$(dirname "$p")"
      git rm -r -q --cached "$p"
      mv "$p" "$HOLD/$p"
    done
    echo "travels: $(( ($(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb packed/gpu | cut -f1)) >> 20 )) MiB with packed/gpu" ;;
  restore)
    for p in $PATHS; do mv "$HOLD/$p" "$p"; done
    git reset -q
    git status --short ;;
  *) echo "usage: bash train/gpu_carry.sh hold|restore"; exit 2 ;;
esac
