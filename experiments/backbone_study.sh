#!/usr/bin/env bash
# Issue 17's MRI study: what a language-pretrained backbone buys the codecs. One GPU call per part (under
# 10 minutes on one H200 with 16 CPU cores). Codecs of codecs/default.yaml are trained from scratch for the
# same number of optimiser steps (step-based warm-up + cosine, no validation, the last weights exported) on
# the same physics-randomised data, side by side on the one GPU, then each is scored with and without
# test-time adaptation (tta_steps=10, the shipped adapter set) on the three evaluation splits of
# results/random_* (in distribution, physics shift, dipy anatomy; 2 volumes x 4 slices each, 4x and 8x).
#   part a: pretrained      backbone/small with its language-model weights, Trigger token
#           random          the same architecture, seeded random initialisation (backbone_seed 0)
#           none            no backbone (the codecs alone)
#   part b: pretrained-off  the pretrained backbone with the Trigger off
#           pretrained-scan the pretrained backbone with one Trigger state per scan
# Seeds 0 1 2 (codec initialisation, data order, masks). Both parts draw the same training data.
# Measured on one H200 (2026-12-03): 9 codecs side by side make about 0.9 steps/s each, 15 about 0.45, and
# the 45 evaluations of `all` do not fit in the same call: run `a` and `b` in separate calls, STEPS chosen so the
# MINUTES cap is not reached (results/backbone_study_prelim/README.md: the first pass, which hit it).
# Usage: bash experiments/backbone_study.sh a|b|all OUT     (STEPS, default 200; MINUTES: wall-clock cap of a
#   training run, default 5; PRESET: simulator preset, default random; DEVICE: cuda; ACCELERATOR: gpu)
# Writes OUT/<variant>-s<seed>/{card.json,metrics.csv,train.log,<split>/summary.csv}; then
# python experiments/backbone_study_table.py OUT... makes the table.
set -uo pipefail
part=${1:?usage: backbone_study.sh a|b OUT}
out=${2:?usage: backbone_study.sh a|b OUT}
steps=${STEPS:-200}
minutes=${MINUTES:-5}
preset=${PRESET:-random}
device=${DEVICE:-cuda}
accel=${ACCELERATOR:-gpu}
py=${PYTHON:-python3}
seeds=(${SEEDS:-0 1 2})
case $part in
  a) variants=(pretrained random none) ;;
  b) variants=(pretrained-off pretrained-scan) ;;
  all) variants=(pretrained random none pretrained-off pretrained-scan) ;;
  *) echo "usage: backbone_study.sh a|b|all OUT" >&2; exit 2 ;;
esac
mkdir -p "$out"
start=$(date +%s)
log() { echo "[+$(($(date +%s) - start))s] $*"; }

gen() { $py -m mrirecon.data.synth --preset "$preset" --quiet --shift-volumes 0 "$@"; }
gen --out data/study17 --train-volumes 16 --val-volumes 1 --test-volumes 0 --physics-volumes 0 --slices 16 \
  --workers 16
gen --out data/random_eval --train-volumes 0 --val-volumes 2 --test-volumes 2 --shift-volumes 2 \
  --physics-volumes 2 --slices 4 --workers 8 &  # the evaluation splits, while the codecs train
evaldata=$!
log "training data ready"
fits=()

backbone_args() {  # VARIANT: the init-args that make it
  local net=--model.net.init_args
  case $1 in
    pretrained) echo "$net.backbone_config backbone/small/config.json $net.backbone_weights backbone/small" ;;
    random) echo "$net.backbone_config backbone/small/config.json" ;;
    none) echo "$net.backbone none" ;;
    pretrained-off) echo "$(backbone_args pretrained) $net.trigger off" ;;
    pretrained-scan) echo "$(backbone_args pretrained) $net.trigger scan" ;;
  esac
}

for seed in "${seeds[@]}"; do
  for variant in "${variants[@]}"; do
    run=runs/study17/$variant-s$seed
    rm -rf "$run" && mkdir -p "$run" "$out/$variant-s$seed"
    sed -e "s#runs/default#$run#g" codecs/default.yaml >"$run/recipe.yaml"
    # shellcheck disable=SC2046
    $py -m mrirecon.fit fit --config codecs/base.yaml --config "$run/recipe.yaml" --seed_everything "$seed" $(backbone_args "$variant") \
      --data.data_path data/study17 --data.num_workers 1 --trainer.accelerator "$accel" \
      --trainer.max_steps "$steps" --trainer.max_time "00:00:0$minutes:00" --model.schedule_seconds 0 \
      --trainer.limit_val_batches 0 \
      >"$out/$variant-s$seed/train.log" 2>&1 &
    fits+=($!)
  done
done
wait "${fits[@]}"
log "trained"
wait $evaldata

score() {  # RUN_NAME SPLIT: the codec with and without adaptation on one split
  local name=$1 split=$2 codec=runs/study17/$1/codec
  local format=${split}_test_format truth=${split}_truth
  [ "$split" = test ] && format=test_format
  $py -m mrirecon.evaluate --device "$device" --accelerations 4 8 --data "data/random_eval/$format" \
    --truth "data/random_eval/$truth" --method "plain=$codec" --method "tta=$codec:tta_steps=10" \
    --out "$out/$name/$split" >"$out/$name/$split.log" 2>&1 || log "evaluation failed: $name $split"
}
tasks=()
for seed in "${seeds[@]}"; do
  for variant in "${variants[@]}"; do
    name=$variant-s$seed
    if [ ! -f "runs/study17/$name/codec/card.json" ]; then log "no codec for $name"; continue; fi
    cp "runs/study17/$name/codec/card.json" "$out/$name/card.json"
    cp "runs/study17/$name/logs/version_0/metrics.csv" "$out/$name/metrics.csv" 2>/dev/null
    for split in test physics shift; do tasks+=("$name $split"); done
  done
done
export -f score log
export py device out start
printf '%s\n' "${tasks[@]}" | xargs -P "${PARALLEL:-16}" -L 1 bash -c 'score $0 $1'
log "scored"
