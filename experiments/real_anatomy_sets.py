"""Real-anatomy validation sets from your own NIfTI magnitude volumes (issue 15; never trained on).

Writes two sets under OUT, both of seed 11, four volumes of four central slices, volumes taking the files in turn:
- OUT/select_real: the training physics ranges (every matrix, coil model, noise and SNR the default trained on);
- OUT/fastmri_like: only fastMRI brain acquisitions (640 x 320 and 640 x 368 k-space, 2x readout oversampling,
  320 x 320 targets), 15-20 loop coils, correlated noise, SNR 20-150, written fully sampled too (``shift/``) so that
  the harness can apply other masks (``--mask-type equispaced --accelerations 4``, ``random 8``).
Usage (repository root): python experiments/real_anatomy_sets.py OUT FILE [FILE ...]
"""

import sys
from dataclasses import replace
from pathlib import Path

from mrirecon.data.synth import FULL_SPLITS, generate_dataset, get_preset

COUNTS = dict(n_train=0, n_val=0, n_test=0, n_physics=0, n_shift=4, slices=4)


def main(out: Path, files: list[str]) -> None:
    random = replace(get_preset("random"), shift_anatomy=tuple(files), **COUNTS)
    generate_dataset(out / "select_real", random, seed=11, workers=2, name="random")
    fastmri_like = replace(
        random,
        matrices=((640, 320, 320, 320), (640, 368, 320, 320)),
        coils=(15, 20),
        coil_models=("loops",),
        noise_correlation=(0.15, 0.3),
        snr=(20.0, 150.0),
    )
    generate_dataset(
        out / "fastmri_like", fastmri_like, seed=11, workers=2, name="fastmri-like", full_splits=(*FULL_SPLITS, "shift")
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
