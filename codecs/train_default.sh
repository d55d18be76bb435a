#!/usr/bin/env bash
# How the shipped default codec (codecs/default) is made, in one call of under 10 minutes on one GPU machine
# (16 CPU cores): a physics-randomised training set (~50 volumes of 16 slices; validation volumes for the
# checkpoint choice, two test volumes for the card; the evaluation splits are generated and scored elsewhere),
# then our codec (codecs/default.yaml over codecs/base.yaml) and an E2E-VarNet of the same size
# (codecs/varnet_default.yaml over both) trained side by side on the same GPU, data, masks and wall-clock budget. Usage: bash codecs/train_default.sh [OUT]
set -euo pipefail
out=${1:-runs/train_default}
py=${PYTHON:-python3}
mkdir -p "$out"
start=$(date +%s)
$py -m mrirecon.data.synth --preset random --out data/random --train-volumes "${TRAIN_VOLUMES:-48}" \
    --val-volumes 4 --test-volumes 2 --shift-volumes 0 --physics-volumes 0 --slices 16 --workers 16 --quiet
echo "data: $(( $(date +%s) - start )) s, $(du -sh data/random | cut -f1)" | tee "$out/timing.txt"
$py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/default.yaml ${FIT_ARGS:-} >"$out/default.log" 2>&1 &
ours=$!
$py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/default.yaml --config codecs/varnet_default.yaml \
    ${FIT_ARGS:-} >"$out/varnet.log" 2>&1 &
varnet=$!
status=0
wait $ours || status=1
wait $varnet || status=1
echo "total: $(( $(date +%s) - start )) s" | tee -a "$out/timing.txt"
exit $status
