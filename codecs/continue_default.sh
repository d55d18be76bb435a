#!/usr/bin/env bash
# The last step of the shipped default (codecs/default), in one call of under 10 minutes on one GPU machine
# (16 CPU cores): the codec made by codecs/train_default.sh and the 5-minute continuation of
# experiments/tta_gap_train.sh (run `nossl`) is trained on at lr 5e-4 on `random-mixed-resolution` data: the
# default's physics ranges, with half of the volumes' anatomy blurred by 0-4 mm FWHM before it is acquired
# (objects of coarser resolution, as real scans of 2-4 mm voxels are). The exported codec (best validation
# checkpoint, its own validation split) comes back packed in pieces of 15 MB: cat OUT/codec.tgz.* | tar xz
# Usage: bash codecs/continue_default.sh OUT   (MINUTES: training budget, default 6; VOLUMES: training volumes, 64;
#   TRAIN_PHYSICS=shift: the same continuation on data of the physics-shift ranges, the `oracle` of issue 16's
#   shift gap, trained on the target physics; INIT: the codec to continue, default codecs/default: for the oracle
#   give it the codec this leg started from, the previous default, so that both legs are of the same recipe;
#   PRESET: the simulator preset, default random-mixed-resolution; the fourth to eighth legs used random-coarse-voxels;
#   SEED: the simulator seed, default 0; NAME: the data and run folder under data/ and runs/, one per leg when two
#   legs share a GPU; WORKERS: data-loader workers, default 12; LR: the peak learning rate, default 5e-4; BATCH: slices
#   per step, default 2;
#   CASCADES: grow INIT's decoder to this many refinement cascades first, the new ones copies of its last ones,
#   python -m mrirecon.codecs.grow; NET=varnet / NET=unet: the same leg for the E2E-VarNet of
#   codecs/varnet_default.yaml / the U-Net of codecs/unet_default.yaml, which then needs INIT, a codec of that
#   network, or INIT=none to start from random weights: how the baselines are brought to the default's training
#   budget, leg by leg (the U-Net has no cascades: CASCADES does not apply); FIT_ARGS: more arguments of the fit,
#   e.g. --trainer.accelerator cpu;
#   GRACE: seconds the fit may run past its budget (export, closing test table), default 150; KEEP_DATA=1: keep the
#   leg's simulated data/NAME, which is deleted after the fit otherwise: two legs' training volumes fill most of a
#   64 GiB disk, and the next legs on the same machine need the room, results/default_v16)
set -uo pipefail
out=${1:?usage: continue_default.sh OUT}
minutes=${MINUTES:-6}
py=${PYTHON:-python3}
name=${NAME:-continue${TRAIN_PHYSICS:+-$TRAIN_PHYSICS}${NET:+-$NET}}  # the oracle and the baselines get their own folders
case ${NET:-} in
  '') overlay=() ;;
  varnet) overlay=(--config codecs/varnet_default.yaml) ;;
  unet) overlay=(--config codecs/unet_default.yaml) ;;
  *) echo "NET=$NET: only varnet or unet (or nothing, our codec)" >&2; exit 2 ;;
esac
if [ -n "${NET:-}" ] && [ -z "${INIT:-}" ]; then
  echo "NET=$NET needs INIT: a codec of that network, or none" >&2
  exit 2
fi
if [ "${NET:-}" = unet ] && [ -n "${CASCADES:-}" ]; then
  echo "CASCADES=$CASCADES: the U-Net has no cascades" >&2
  exit 2
fi
mkdir -p "$out"
start=$(date +%s)
$py -m mrirecon.data.synth --preset "${PRESET:-random-mixed-resolution}" --seed "${SEED:-0}" --out "data/$name" --train-volumes "${VOLUMES:-64}" \
  --val-volumes 4 --test-volumes 2 --shift-volumes 0 --physics-volumes 0 --slices 16 --workers 16 --quiet \
  ${TRAIN_PHYSICS:+--train-physics "$TRAIN_PHYSICS"}
echo "data: $(($(date +%s) - start)) s" | tee "$out/timing.txt"
init=${INIT:-codecs/default}
if [ "$init" != none ] && [ -n "${CASCADES:-}" ]; then
  $py -m mrirecon.codecs.grow "$init" "runs/$name/grown" --cascades "$CASCADES" || exit 2
  init=runs/$name/grown
fi
from=()
[ "$init" = none ] || from=(--model.init_codec "$init")
net_size=()
if [ "${NET:-}" != unet ]; then
  # the network is built from codecs/default.yaml; its cascade count follows the codec it starts from
  cascades=${CASCADES:-8}
  [ "$init" = none ] || cascades=$($py -c "import json, sys; print(json.load(open(sys.argv[1]))['net']['init_args']['num_cascades'])" "$init/card.json")
  net_size=(--model.net.init_args.num_cascades "$cascades")
fi
# the fit (and its closing test pass and table) gets at most GRACE seconds beyond its budget, so the packing below always
# runs; with 12 cascades the closing table is cut off there (exit 124), after the codec was exported
timeout $((minutes * 60 + ${GRACE:-150})) $py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/default.yaml "${overlay[@]}" \
  --data.data_path "data/$name" --trainer.default_root_dir "runs/$name" --trainer.logger.init_args.save_dir "runs/$name" \
  "${from[@]}" "${net_size[@]}" --model.lr "${LR:-5e-4}" --data.batch_size "${BATCH:-2}" \
  --trainer.max_time "00:00:0$minutes:00" --model.schedule_seconds $((minutes * 60 - 10)) \
  --data.num_workers ${WORKERS:-12} ${FIT_ARGS:-} >"$out/train.log" 2>&1
status=$?
echo "trained: $(($(date +%s) - start)) s (exit $status)" | tee -a "$out/timing.txt"
cp "runs/$name"/logs/version_*/metrics.csv "$out/" 2>/dev/null
tar czf - -C "runs/$name" codec | split -b 15M - "$out/codec.tgz."
[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "data/$name"
exit $status
