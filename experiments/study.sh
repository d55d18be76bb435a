#!/usr/bin/env bash
# The backbone / Trigger / TTA study (issue 5), on one GPU. Every variant trains the same codecs
# (codecs/tiny.yaml) on the same simulated data (small preset: MNI152 anatomy, 8 coils, 128x128) for the same
# wall-clock budget, once per training seed (--seed_everything: codec init, data order, masks; the frozen
# backbone keeps backbone_seed 0). One harness (mrirecon.evaluate) scores them:
#   * in distribution: the test split at 4x and 8x; nirvana-token (and the 4x-only codec) with and without TTA;
#   * shift (a), acceleration: nirvana-token-4x-only (trained at 4x only) at 8x, with and without TTA, against
#     nirvana-token (trained at 4x and 8x) on the same 8x data;
#   * shift (b), anatomy / coil count: every variant on the shift split (dipy subjects, 12-16 coils, k-space
#     256x128 with 2x readout oversampling; target 128x128), nirvana-token with and without TTA.
# TTA fits offsets of the Trigger, so only the nirvana variants have it (gated-deltanet, transformer and none have
# no Trigger layers). SENSE / L1-wavelet are left out (minutes per evaluation); zero-filled is the data reference.
#
# Usage: bash experiments/study.sh [part1|part2|all] [OUT_DIR] [SECONDS_PER_RUN]
#   part1 = seed 0, part2 = seed 1, all = both. A part: data (if missing), 7 training runs, 2 evaluations; about
#   7 x (SECONDS_PER_RUN + ~20 s start-up/export/test) + ~1.5 min, i.e. ~8.5 min on one H100 at 40 s per run.
#   Writes OUT_DIR/study_s<SEED>_{test,shift}/ (summary.md, summary.csv, per_volume.csv) and study_s<SEED>_training.csv (steps
#   per codec), logs and codecs under runs/study/s<SEED>/, then OUT_DIR/study.md (experiments/study_tables.py)
#   from every seed present in OUT_DIR.
# Environment: EPOCHS (train every variant for this many epochs instead of SECONDS_PER_RUN of wall time); for CPU
# runs: PYTHON, ACCELERATOR (gpu), DEVICE (cuda), PRESET (small), DATA (data/synth),
# WORKERS (8 data-loader workers).
set -euo pipefail
part=${1:-all}
out=${2:-results}
budget=${3:-40}
py=${PYTHON:-python3}
accel=${ACCELERATOR:-gpu}
device=${DEVICE:-cuda}
preset=${PRESET:-small}
data=${DATA:-data/synth}
workers=${WORKERS:-8}
max_time=$(printf '00:%02d:%02d:%02d' $((budget / 3600)) $((budget / 60 % 60)) $((budget % 60)))  # DD:HH:MM:SS
limit=(--trainer.max_epochs 1000 --trainer.max_time "$max_time")  # the same wall-clock budget for every variant
if [ -n "${EPOCHS:-}" ]; then limit=(--trainer.max_epochs "$EPOCHS"); fi  # or the same number of epochs
case $part in
  part1) seeds=(0) ;;
  part2) seeds=(1) ;;
  all) seeds=(0 1) ;;
  *) echo "usage: bash experiments/study.sh [part1|part2|all] [OUT_DIR] [SECONDS_PER_RUN]" >&2; exit 2 ;;
esac
variants=(nirvana-token nirvana-off nirvana-scan gated-deltanet transformer none)
start=$SECONDS
log() { echo "[$(date +%T) +$((SECONDS - start))s] $*"; }
mkdir -p "$out" runs/study

# the data: rebuilt when a split is missing or the folder holds another preset
rebuild=()
if [ ! -d "$data/train" ] || [ ! -d "$data/shift_test_format" ] ||
  ! grep -q "\"preset\": \"$preset\"" "$data/.synth.json" 2>/dev/null; then
  rebuild=(--overwrite)
fi
$py -m mrirecon.data.synth --preset "$preset" --out "$data" --workers 16 --quiet "${rebuild[@]}"
log "data ready ($preset preset under $data)"

train() {  # seed, name, extra CLI arguments; a failed run is reported and left out of the evaluation
  local seed=$1 name=$2
  shift 2
  local dir=runs/study/s$seed/$name
  mkdir -p "runs/study/s$seed"
  rm -rf "$dir"
  if $py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/tiny.yaml --seed_everything "$seed" \
    --data.data_path "$data" --trainer.accelerator "$accel" "${limit[@]}" --trainer.default_root_dir "$dir" \
    --trainer.logger false --trainer.enable_progress_bar false \
    --trainer.callbacks '[]' --trainer.callbacks+=mrirecon.training.callbacks.ExportCodec \
    --trainer.callbacks.dirpath "$dir" --data.num_workers "$workers" "$@" > "$dir.log" 2>&1; then
    log "trained $name (seed $seed)"
  else
    log "FAILED: $name (seed $seed), see $dir.log:"
    tail -n 5 "$dir.log" >&2
  fi
}

evaluate() {  # seed
  local seed=$1 dir=runs/study/s$1
  local tta=tta_steps=10 ind=(--method zero-filled) ood=(--method zero-filled)
  for name in "${variants[@]}" nirvana-token-4x-only; do
    if [ ! -f "$dir/$name/card.json" ]; then continue; fi
    ind+=(--method "$name=$dir/$name")
    if [ "$name" != nirvana-token-4x-only ]; then ood+=(--method "$name=$dir/$name"); fi
    if [ "$name" = nirvana-token ]; then ood+=(--method "$name-tta=$dir/$name:$tta"); fi
    if [[ $name == nirvana-token* ]]; then ind+=(--method "$name-tta=$dir/$name:$tta"); fi
  done
  $py -m mrirecon.evaluate --data "$data/test_format" --truth "$data/test_truth" "${ind[@]}" --device "$device" \
    --out "$out/study_s${seed}_test" > "$dir/evaluate_test.log" 2>&1 || log "evaluate (test split) exited with $?"
  log "evaluated seed $seed on the test split"
  $py -m mrirecon.evaluate --data "$data/shift_test_format" --truth "$data/shift_truth" "${ood[@]}" \
    --device "$device" --out "$out/study_s${seed}_shift" > "$dir/evaluate_shift.log" 2>&1 ||
    log "evaluate (shift split) exited with $?"
  log "evaluated seed $seed on the shift split"
  $py experiments/study_tables.py --training "$dir" --out "$out/study_s${seed}_training.csv"
}

net=--model.net.init_args
for seed in "${seeds[@]}"; do
  train "$seed" nirvana-token $net.backbone=nirvana $net.trigger=token
  train "$seed" nirvana-off $net.backbone=nirvana $net.trigger=off
  train "$seed" nirvana-scan $net.backbone=nirvana $net.trigger=scan
  train "$seed" gated-deltanet $net.backbone=gated-deltanet
  train "$seed" transformer $net.backbone=transformer
  train "$seed" none $net.backbone=none
  # shift (a): trained at 4x only, tested at 8x
  train "$seed" nirvana-token-4x-only $net.backbone=nirvana $net.trigger=token '--data.accelerations=[4]' \
    '--data.center_fractions=[0.08]'
  evaluate "$seed"
done
$py experiments/study_tables.py "$out" --prefix study
log "done: $out/study.md"
