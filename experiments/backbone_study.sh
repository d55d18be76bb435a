#!/usr/bin/env bash
# Issue 17's MRI study: what a language-pretrained backbone buys the codecs. Codecs of one recipe are trained
# from scratch for the same number of optimiser steps (step-based warm-up + cosine, no validation, the last
# weights exported) on the same physics-randomised data, side by side on one GPU, then scored with and without
# test-time adaptation (tta_steps=10, the shipped adapter set) on three evaluation splits of the same preset
# (in distribution, physics shift, dipy anatomy; 4x and 8x), zero-filled beside them.
#   part a: pretrained      backbone/small with its language-model weights, Trigger token
#           random          the same architecture, seeded random initialisation (backbone_seed 0)
#           none            no backbone (the codecs alone)
#   part b: pretrained-off  the pretrained backbone with the Trigger off
#           pretrained-scan the pretrained backbone with one Trigger state per scan
# Seeds 0 1 2 (codec initialisation, data order, masks). Both parts draw the same training data.
# The study in the README (results/backbone_study/, one H200 call of 9 minutes, all 15 codecs side by side):
#   PRESET=random-small RECIPE=codecs/tiny.yaml STEPS=600 MINUTES=6 EVAL_VOLUMES=3 EVAL_SLICES=6 \
#     bash experiments/backbone_study.sh all OUT
# At fastMRI sizes (PRESET=random, RECIPE=codecs/default.yaml) 9 codecs side by side make only about 0.7
# steps/s each (results/backbone_study_prelim/README.md).
# Usage: bash experiments/backbone_study.sh a|b|all OUT     (STEPS, default 200; MINUTES: wall-clock cap of a
#   training run, default 5; PRESET: simulator preset, default random; RECIPE: model overlay, default
#   codecs/default.yaml; EVAL_VOLUMES, EVAL_SLICES: size of each evaluation split, default 2 x 4; THREADS:
#   CPU threads per process, default 1; DEVICE: cuda; ACCELERATOR: gpu)
# Writes OUT/<variant>-s<seed>/{card.json,metrics.csv,train.log} and OUT/eval-<split>-<acc>/ (evaluate's
# tables, methods RUN and RUN+tta); then python experiments/backbone_study_table.py OUT makes the table.
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
recipe=${RECIPE:-codecs/default.yaml}
eval_volumes=${EVAL_VOLUMES:-2}
eval_slices=${EVAL_SLICES:-4}
# one thread per process: many training processes share the machine's cores
export OMP_NUM_THREADS=${THREADS:-1}
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
gen --out data/study17_eval --train-volumes 0 --val-volumes 0 --test-volumes "$eval_volumes" \
  --shift-volumes "$eval_volumes" --physics-volumes "$eval_volumes" --slices "$eval_slices" --workers 8 &
  # the evaluation splits, while the codecs train
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
    sed -e "s#runs/default#$run#g" -e "s#runs/tiny#$run#g" "$recipe" >"$run/recipe.yaml"
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

# One evaluate process per split and acceleration scores every codec, with and without adaptation (methods
# RUN and RUN+tta), so the data and the GPU are shared by a few processes instead of one per codec.
methods=(--method zero-filled)
for seed in "${seeds[@]}"; do
  for variant in "${variants[@]}"; do
    name=$variant-s$seed codec=runs/study17/$variant-s$seed/codec
    if [ ! -f "$codec/card.json" ]; then log "no codec for $name"; continue; fi
    cp "$codec/card.json" "$out/$name/card.json"
    cp "runs/study17/$name/logs/version_0/metrics.csv" "$out/$name/metrics.csv" 2>/dev/null
    methods+=(--method "$name=$codec" --method "$name+tta=$codec:tta_steps=10")
  done
done
for split in test physics shift; do
  format=${split}_test_format truth=${split}_truth
  [ "$split" = test ] && format=test_format
  for acc in 4 8; do
    $py -m mrirecon.evaluate --device "$device" --accelerations $acc --data "data/study17_eval/$format" \
      --truth "data/study17_eval/$truth" "${methods[@]}" --out "$out/eval-$split-$acc" \
      >"$out/eval-$split-$acc.log" 2>&1 || log "evaluation failed: $split ${acc}x" &
  done
done
wait
log "scored"
