#!/usr/bin/env bash
# The backbone / Trigger / TTA study (issue 5), on one GPU: every variant trains the same codecs
# (codecs/tiny.yaml) on the same simulated data (small preset) for the same wall-clock budget, then all are
# scored by one harness. Usage: bash codecs/study.sh [OUT_DIR] [SECONDS_PER_RUN]
set -euo pipefail
out=${1:-results}
budget=${2:-60}
py=${PYTHON:-python3}
mkdir -p "$out" runs/study
$py -m mrirecon.data.synth --preset small --out data/synth --workers 16 --quiet
train() {  # name, then extra CLI arguments
  local name=$1; shift
  $py -m mrirecon.fit fit --config codecs/tiny.yaml --trainer.accelerator gpu --trainer.max_epochs 1000 \
    --trainer.max_time "00:00:00:$budget" --trainer.logger false --trainer.enable_progress_bar false \
    --trainer.callbacks '[]' --trainer.callbacks+=mrirecon.callbacks.ExportCodec \
    --trainer.callbacks.dirpath "runs/study/$name" --data.num_workers 8 "$@" > "runs/study/$name.log" 2>&1
}
net=--model.net.init_args
train nirvana-token $net.backbone=nirvana $net.trigger=token
train nirvana-off $net.backbone=nirvana $net.trigger=off
train nirvana-scan $net.backbone=nirvana $net.trigger=scan
train none $net.backbone=none
train gated-deltanet $net.backbone=gated-deltanet
# distribution shift: trained at 4x only, tested at 8x
train nirvana-token-4x-only $net.backbone=nirvana '--data.accelerations=[4]' '--data.center_fractions=[0.08]'
methods=(--method zero-filled)
for name in nirvana-token nirvana-off nirvana-scan none gated-deltanet nirvana-token-4x-only; do
  methods+=(--method "$name=runs/study/$name")
done
methods+=(--method "nirvana-token-tta=runs/study/nirvana-token:tta_steps=10")
methods+=(--method "nirvana-token-4x-only-tta=runs/study/nirvana-token-4x-only:tta_steps=10")
$py -m mrirecon.evaluate --data data/synth/test_format --truth data/synth/test_truth "${methods[@]}" \
  --device cuda --out "$out/study_small"
