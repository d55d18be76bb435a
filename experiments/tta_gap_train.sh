#!/usr/bin/env bash
# Issue 16, the training half of the shift-gap study, in one call of under 10 minutes on one GPU machine.
# The shipped default (codecs/default) is trained on for the same wall-clock budget three ways, side by side:
#   ssl    - with the self-supervised held-out-line term (--model.ssl_weight), on the default physics;
#   nossl  - without it (the ablation), same data and budget;
#   oracle - with it, on data drawn from the physics-shift ranges (--train-physics shift): the reference
#            "trained on the target physics" of the shift gap (its volumes are not the test volumes).
# Meanwhile the unchanged default is scored with every adapter set on target-physics validation volumes
# (data/oracle/val: the choice of adapters is made there, never on a test split).
# Usage: bash experiments/tta_gap_train.sh OUT   (MINUTES: training budget, default 5)
set -uo pipefail
out=${1:?usage: tta_gap_train.sh OUT}
minutes=${MINUTES:-5}
py=${PYTHON:-python3}
mkdir -p "$out"
start=$(date +%s)
gen() { $py -m mrirecon.data.synth --preset random --workers 16 --quiet --slices 16 --shift-volumes 0 "$@"; }
gen --out data/random --train-volumes 48 --val-volumes 4 --test-volumes 2 --physics-volumes 0
gen --out data/oracle --train-physics shift --train-volumes 48 --val-volumes 4 --test-volumes 0 --physics-volumes 0
echo "data: $(($(date +%s) - start)) s" | tee "$out/timing.txt"

fit() {
  local name=$1 data=$2
  shift 2
  $py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/default.yaml --data.data_path "$data" \
    --trainer.default_root_dir "runs/$name" --trainer.logger.init_args.save_dir "runs/$name" \
    --model.init_codec codecs/default --model.lr 5e-4 \
    --trainer.max_time "00:00:0$minutes:00" --model.schedule_seconds $((minutes * 60 - 10)) \
    --data.num_workers 4 "$@" >"$out/$name.log" 2>&1 &
}
fit ssl data/random --model.ssl_weight 0.1
fit nossl data/random
fit oracle data/oracle --model.ssl_weight 0.1
$py -m mrirecon.data.synth --preset random --out data/random_eval --train-volumes 0 --val-volumes 2 \
  --test-volumes 2 --shift-volumes 2 --physics-volumes 2 --slices 4 --workers 4 --quiet  # the evaluation splits

T="codecs/default:tta_steps=10"
$py -m mrirecon.evaluate --device cuda --data data/oracle/val --accelerations 4 8 --max-slices-per-volume 4 \
  --method default=codecs/default --method trigger=$T,tta_params=trigger --method heads=$T,tta_params=heads \
  --method sens=$T,tta_params=sens --method lora=$T,tta_params=lora --method trigger+heads=$T,tta_params=trigger+heads \
  --method heads+sens=$T,tta_params=heads+sens --method cascades=$T,tta_params=cascades,tta_weight_lr=0.0001 \
  --method heads-lr1e-2=$T,tta_params=heads,tta_weight_lr=0.01 --out "$out/select_default" >"$out/select.log" 2>&1
wait
echo "trained: $(($(date +%s) - start)) s" | tee -a "$out/timing.txt"
