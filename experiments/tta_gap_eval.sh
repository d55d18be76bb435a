#!/usr/bin/env bash
# Issue 16, the adaptation half of the shift-gap study, in one call of under 10 minutes on one GPU machine.
# 1. The adapter sets, scored on target-physics validation volumes (data/oracle/val: physics-shift ranges,
#    other volumes than the test splits): the choice of the shipped adaptation is made here.
# 2. The codec with and without each adaptation on the three evaluation splits (in distribution, physics
#    shift, dipy anatomy), the splits of results/random_* (same command, same seed).
# 3. Seconds per 16-slice 640x320 16-coil volume with each adapter set (mrirecon.bench tta).
# Usage: bash experiments/tta_gap_eval.sh OUT NAME=CODEC [NAME=CODEC ...]   (STEPS: adaptation steps, default 10;
# the codecs run side by side on the one GPU; the speed bench uses the first)
#   SWEEP=budget: instead of the adapter sets, `cascades` at 10 / 20 / 30 steps and two step sizes (the budget
#   is chosen on the selection volumes too; the bench then times 10, 20 and 30 steps). It does not fit in one
#   10-minute call: on the H200 the three splits finished and the selection volumes did not;
#   ORACLE=CODEC: also score that codec (trained on the target physics) on the physics split, OUT/oracle_physics
set -uo pipefail
out=${1:?usage: tta_gap_eval.sh OUT NAME=CODEC [NAME=CODEC ...]}
first=${2:?usage: tta_gap_eval.sh OUT NAME=CODEC [NAME=CODEC ...]}
codec=${first#*=}
steps=${STEPS:-10}
py=${PYTHON:-python3}
mkdir -p "$out"
$py -m mrirecon.data.synth --preset random --out data/oracle --train-physics shift --train-volumes 0 \
  --val-volumes 4 --test-volumes 0 --shift-volumes 0 --physics-volumes 0 --slices 16 --workers 16 --quiet &
$py -m mrirecon.data.synth --preset random --out data/random_eval --train-volumes 0 --val-volumes 2 \
  --test-volumes 2 --shift-volumes 2 --physics-volumes 2 --slices 4 --workers 8 --quiet &
wait

study() {  # NAME CODEC: every adapter set on the selection volumes and the three splits
  local dir=$out/$1 T="$2:tta_steps=$steps"
  mkdir -p "$dir"
  local M=(--method "none=$2" --method "trigger=$T,tta_params=trigger" --method "heads=$T,tta_params=heads"
    --method "lora=$T,tta_params=lora" --method "trigger+heads=$T,tta_params=trigger+heads"
    --method "cascades=$T,tta_params=cascades,tta_weight_lr=0.0001")
  if [ "${SWEEP:-}" = budget ]; then
    M=(--method "none=$2")
    for n in 10 20 30; do  # patience grows with the steps, so a longer run is not cut at step 5
      M+=(--method "s$n-lr1e-4=$2:tta_steps=$n,tta_params=cascades,tta_weight_lr=0.0001,tta_patience=$((n / 2))")
      M+=(--method "s$n-lr3e-4=$2:tta_steps=$n,tta_params=cascades,tta_weight_lr=0.0003,tta_patience=$((n / 2))")
    done
  fi
  ev() { $py -m mrirecon.evaluate --device cuda --accelerations 4 8 "${M[@]}" "$@"; }
  ev --data data/oracle/val --max-slices-per-volume 4 --out "$dir/select" >"$dir/select.log" 2>&1 &
  for split in physics test shift; do  # side by side: seconds per slice here are shared-GPU figures, the bench times
    local format=${split}_test_format truth=${split}_truth
    [ "$split" = test ] && format=test_format
    ev --data "data/random_eval/$format" --truth "data/random_eval/$truth" --out "$dir/$split" >"$dir/$split.log" 2>&1 &
  done
  wait
}
for pair in "${@:2}"; do
  study "${pair%%=*}" "${pair#*=}" &
done
if [ -n "${ORACLE:-}" ]; then
  $py -m mrirecon.evaluate --device cuda --accelerations 4 8 --method "oracle=$ORACLE" \
    --data data/random_eval/physics_test_format --truth data/random_eval/physics_truth \
    --out "$out/oracle_physics" >"$out/oracle.log" 2>&1 &
fi
wait  # then time alone on the GPU
bench() {  # NAME STEPS ADAPTER_SETS...: OUT/NAME.jsonl and .md
  $py -m mrirecon.bench tta --device cuda --codec "$codec" --coils 16 --size 640 320 --target-height 320 \
    --batch 8 --tta-slices 16 --tta-steps "$2" --tta-repeats 3 --precision 32 --tta-params "${@:3}" \
    --json "$out/$1.jsonl" --markdown "$out/$1.md" >>"$out/bench.log" 2>&1
}
if [ "${SWEEP:-}" = budget ]; then
  for n in 10 20 30; do bench "bench_tta_s$n" "$n" cascades; done
else
  bench bench_tta "$steps" trigger heads lora trigger+heads cascades
fi
tail -n 2 "$out"/*/*.log "$out"/*.log
