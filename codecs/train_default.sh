#!/usr/bin/env bash
# How the shipped default codec (codecs/default) was made, on one GPU machine (16 CPU cores):
# the embedded dataset at fastMRI brain size, training with codecs/default.yaml, then the evaluation
# of the exported codec against the classical baselines on the test split and on unseen anatomy.
# Usage: bash codecs/train_default.sh [OUT_DIR]
set -euo pipefail
out=${1:-results}
py=${PYTHON:-python3}
mkdir -p "$out"
$py -m mrirecon.data.synth --full --out data/full --workers 16 --quiet
$py -m mrirecon.fit fit --config codecs/default.yaml
common=(--method zero-filled --method sense --method l1-wavelet --method ours=runs/default/codec
        --workers 16 --max-slices-per-volume 4)
$py -m mrirecon.evaluate --data data/full/test_format --truth data/full/test_truth "${common[@]}" \
    --out "$out/default_full_test"
$py -m mrirecon.evaluate --data data/full/shift_test_format --truth data/full/shift_truth "${common[@]}" \
    --out "$out/default_full_shift"
