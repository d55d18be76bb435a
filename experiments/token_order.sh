#!/usr/bin/env bash
# Token-order ablation (how a causal backbone lets every output see the whole image), on one GPU: the
# default codecs trained for the same wall-clock budget with each order, scored by one harness; then a
# smoke run of the 1.3B recipe (a few steps) to time it. Usage: bash experiments/token_order.sh [OUT_DIR] [SECONDS]
set -euo pipefail
out=${1:-results}
budget=${2:-60}
py=${PYTHON:-python3}
mkdir -p "$out" runs/order
$py -m mrirecon.data.synth --preset small --out data/synth --workers 16 --quiet
methods=(--method zero-filled)
for order in raster twice bidirectional; do
  $py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/tiny.yaml --trainer.accelerator gpu \
    --trainer.max_epochs 1000 --trainer.default_root_dir "runs/order/$order" \
    --trainer.max_time "00:00:00:$budget" --trainer.logger false --trainer.enable_progress_bar false \
    --trainer.callbacks '[]' --trainer.callbacks+=mrirecon.training.callbacks.ExportCodec \
    --trainer.callbacks.dirpath "runs/order/$order" --data.num_workers 8 \
    --model.net.init_args.token_order=$order > "runs/order/$order.log" 2>&1
  methods+=(--method "$order=runs/order/$order")
done
$py -m mrirecon.evaluate --data data/synth/test_format --truth data/synth/test_truth "${methods[@]}" \
  --device cuda --out "$out/token_order_small"
# the 1.3B recipe on the small preset: 30 steps, timed by Lightning's CSV log
$py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/nirvana-1.3B.yaml --data.data_path data/synth \
  --data.synth true --data.synth_preset small --data.batch_size 2 --trainer.max_steps 30 --trainer.limit_val_batches 4 \
  --trainer.limit_test_batches 4 --trainer.val_check_interval 30 2>&1 | grep -v -i warn | tail -15
