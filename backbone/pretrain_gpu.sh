#!/usr/bin/env bash
# How the shipped pretrained backbone (backbone/small-pretrained) was made, in one call of under 10 minutes on
# one GPU: the main run (`small` Nirvana, Trigger token, 5 minutes) and the paper's comparisons at this scale
# (Nirvana token / off, gated-deltanet, an equal-size transformer: the same STEPS steps of the same batches)
# side by side on the same GPU, then the comparison table. Needs corpus/ (python -m mrirecon.pretrain.corpus).
# Usage: bash backbone/pretrain_gpu.sh OUT [STEPS]
set -uo pipefail
out=${1:?usage: pretrain_gpu.sh OUT [STEPS]}
steps=${2:-300}
py=${PYTHON:-python3}
mkdir -p "$out"
common=(--config backbone/pretrain.yaml --trainer.precision bf16-mixed)
"$py" -m mrirecon.pretrain fit "${common[@]}" --trainer.max_time 00:00:05:00 \
  --trainer.default_root_dir "$out/small" >"$out/small.log" 2>&1 &
for run in "nirvana token" "nirvana off" "gated-deltanet token" "transformer token"; do
  read -r arch trigger <<<"$run"
  name=$arch; [ "$arch" = nirvana ] && name=nirvana-$trigger
  "$py" -m mrirecon.pretrain fit "${common[@]}" --model.architecture "$arch" --model.trigger "$trigger" \
    --model.warmup_steps 50 --trainer.max_steps "$steps" --trainer.max_time 00:00:05:30 \
    --trainer.val_check_interval "$steps" --trainer.default_root_dir "$out/$name" >"$out/$name.log" 2>&1 &
done
wait
"$py" -m mrirecon.pretrain.compare "$out"/nirvana-token "$out"/nirvana-off "$out"/gated-deltanet "$out"/transformer \
  --out "$out/comparison.md"
