#!/usr/bin/env bash
# Issue 15: does training on anatomy of coarser resolution help on real anatomy? One GPU call of about 5 minutes.
# The shipped default (codecs/default) is trained on side by side for the same wall-clock budget, at lr 5e-4,
# on two training sets of the same size and seed: `random` (the default's physics) and `random-resolution`
# (the same ranges, with the anatomy blurred by 0-4 mm FWHM before it is acquired). Each exports the codec of
# its best validation checkpoint (its own validation split). The two codecs come back packed into OUT in
# pieces of 15 MB (cat OUT/codecs.tgz.* | tar xz); score them on the CPU with mrirecon.evaluate.
# Usage: bash experiments/resolution_trial.sh OUT   (MINUTES: training budget, default 3; VOLUMES: training
#   volumes per set, default 24)
set -uo pipefail
out=${1:?usage: resolution_trial.sh OUT}
minutes=${MINUTES:-3}
volumes=${VOLUMES:-24}
py=${PYTHON:-python3}
mkdir -p "$out"
start=$(date +%s)
gen() {
  $py -m mrirecon.data.synth --preset "$1" --out "$2" --workers 8 --quiet --slices 16 --train-volumes "$volumes" \
    --val-volumes 2 --test-volumes 0 --shift-volumes 0 --physics-volumes 0
}
gen random data/trial_base &
gen random-resolution data/trial_res &
wait
echo "data: $(($(date +%s) - start)) s" | tee "$out/timing.txt"
for name in base res; do
  $py -m mrirecon.fit fit --config codecs/base.yaml --config codecs/default.yaml --data.data_path "data/trial_$name" \
    --trainer.default_root_dir "runs/trial_$name" --trainer.logger.init_args.save_dir "runs/trial_$name" \
    --model.init_codec codecs/default --model.lr 5e-4 \
    --trainer.max_time "00:00:0$minutes:00" --model.schedule_seconds $((minutes * 60 - 10)) \
    --data.num_workers 6 >"$out/$name.log" 2>&1 &
done
wait
echo "trained: $(($(date +%s) - start)) s" | tee -a "$out/timing.txt"
mkdir -p runs/trial && for name in base res; do cp -r "runs/trial_$name/codec" "runs/trial/$name"; done
tar czf - -C runs trial | split -b 15M - "$out/codecs.tgz."
