#!/usr/bin/env bash
# How the shipped default codec (codecs/default) was made, on one GPU machine (16 CPU cores): the embedded
# dataset at two sizes (the small preset, 8 coils 128x128, and the full preset, fastMRI brain size: 16 coils,
# 640x320 readout-oversampled k-space), mixed into one training set, then codecs/default.yaml, then the
# exported codec evaluated on both test splits and on unseen anatomy. Usage: bash codecs/train_default.sh [OUT]
set -euo pipefail
out=${1:-results}
py=${PYTHON:-python3}
mkdir -p "$out"
$py -m mrirecon.data.synth --full --out data/full --workers 16 --quiet
$py -m mrirecon.data.synth --preset small --out data/synth --workers 16 --quiet
for split in train val test; do  # one folder of links, names prefixed by the preset
  mkdir -p data/mixed/$split
  for preset in full synth; do
    for f in data/$preset/$split/*.h5; do ln -sf "$(realpath "$f")" "data/mixed/$split/${preset}_$(basename "$f")"; done
  done
done
$py -m mrirecon.fit fit --config codecs/default.yaml
eval_ours() {  # data truth name [extra methods...]
  $py -m mrirecon.evaluate --data "$1" --truth "$2" --method zero-filled --method ours=runs/default/codec \
      "${@:4}" --workers 16 --out "$out/$3"
}
eval_ours data/synth/test_format data/synth/test_truth default_small_test
eval_ours data/full/shift_test_format data/full/shift_truth default_full_shift_ours --max-slices-per-volume 2
# The classical baselines at full size (slow on CPU: ~20-60 s per slice each) were run once with:
#   python -m mrirecon.evaluate --data data/full/shift_test_format --truth data/full/shift_truth \
#     --method zero-filled --method sense --method l1-wavelet --method ours=runs/default/codec \
#     --workers 16 --max-slices-per-volume 2 --out results/default_full_shift
