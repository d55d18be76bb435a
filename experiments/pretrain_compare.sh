#!/usr/bin/env bash
# The paper's comparisons at small scale, same tokens and budget: Nirvana (Trigger token / off),
# gated-deltanet and an equal-size Llama transformer, each trained for STEPS steps of the same batches,
# then the Markdown table. Usage: bash experiments/pretrain_compare.sh OUT_DIR [STEPS] [extra CLI args...]
set -euo pipefail
out=${1:?usage: pretrain_compare.sh OUT_DIR [STEPS] [extra args]}
steps=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
py=${PYTHON:-python}
mkdir -p "$out"
for run in "nirvana token" "nirvana off" "gated-deltanet token" "transformer token"; do
  read -r arch trigger <<< "$run"
  name=$arch; [ "$arch" = nirvana ] && name=nirvana-$trigger
  "$py" -m mrirecon.pretrain fit --config backbone/pretrain.yaml \
    --model.architecture "$arch" --model.trigger "$trigger" --model.warmup_steps 100 \
    --trainer.max_steps "$steps" --trainer.max_time 00:00:01:45 --trainer.val_check_interval "$steps" \
    --trainer.default_root_dir "$out/$name" "$@" 2>&1 | grep -v -i -E "warning|warn\(" | tee "$out/$name.log" \
    || echo "run $name failed (see $out/$name.log)"
done
"$py" -m mrirecon.pretrain.compare "$out"/nirvana-token "$out"/nirvana-off "$out"/gated-deltanet "$out"/transformer \
  --out "$out/comparison.md"
