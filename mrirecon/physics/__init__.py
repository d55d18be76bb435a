"""The multi-coil Cartesian MRI forward model, in one place.

Conventions (fastMRI's): k-space is centred and the 2-D FFT is orthonormal (``fastmri.fft2c``); torch
tensors hold complex numbers as a trailing real/imaginary axis of size 2; the phase-encode axis is the last
spatial axis (W) and a mask selects whole columns. Numpy helpers (``*_np``) take complex arrays.

Forward operator of a scan with coil maps S and column mask M:  A x = M F (S x);  A^H y = sum_c conj(S_c) F^H (M y_c).

- :mod:`.fft`: centred FFTs (torch and numpy), the exact readout crop;
- :mod:`.coils`: coil expand / reduce, coil compression;
- :mod:`.consistency`: A, A^H, hard and soft data consistency;
- :mod:`.solve`: a SENSE solve pulled toward a prior image (conjugate gradients);
- :mod:`.espirit`: ESPIRiT coil maps from the fully sampled centre (sigpy);
- :mod:`.combine`: root-sum-of-squares, fastMRI's zero-filled / target image;
- :mod:`.masks`: sampling masks (fastMRI's mask functions, mixed training masks, per-file evaluation masks);
- :mod:`.noise`: white and coil-correlated k-space noise, random noise covariances, the noise floor under an RSS image;
- :mod:`.coil_models`, :mod:`.phase`: the simulators' random coil sensitivities and image phase.
"""

from .coil_models import COIL_MODELS, coil_maps, cropped_birdcage_maps, smooth_coil_phase
from .coils import (
    coil_basis,
    compress_coils,
    expand_coils,
    object_mask,
    sens_expand,
    sens_expand_np,
    sens_reduce,
    zero_outside_maps,
)
from .combine import center_crop, coil_images_rss_np, rss, rss_np, zero_filled_rss, zero_filled_rss_np
from .consistency import adjoint_op, data_consistency, forward_op, soft_data_consistency
from .espirit import (
    FINAL_SOLVE_GRID,
    NoCalibrationRegionError,
    cupy_gpu,
    espirit_calibration,
    espirit_maps,
    espirit_sens,
    map_misfit,
)
from .fft import as_complex, crop_readout, crop_readout_np, fft2c, fft2c_np, ifft2c, ifft2c_np, readout_image
from .masks import (
    BASE_MASK_TYPES,
    MASK_TYPES,
    STANDARD_PAIRS,
    MixedMaskFunc,
    centre_lines,
    file_mask,
    fixed_seed,
    make_mask_func,
    partial_fourier,
    sample_mask,
)
from .noise import (
    coil_noise,
    kspace_noise_variance,
    noise_correlation,
    random_noise_covariance,
    readout_margin_noise,
    restore_noise_floor,
    rss_noise_mean_ratio,
    sample_noise_variance,
    white_noise,
)
from .phase import smooth_phase, unscaled_smooth_phase
from .solve import sense_toward_prior

__all__ = [
    "BASE_MASK_TYPES",
    "FINAL_SOLVE_GRID",
    "COIL_MODELS",
    "MASK_TYPES",
    "STANDARD_PAIRS",
    "MixedMaskFunc",
    "NoCalibrationRegionError",
    "adjoint_op",
    "as_complex",
    "center_crop",
    "centre_lines",
    "coil_basis",
    "coil_images_rss_np",
    "coil_maps",
    "coil_noise",
    "compress_coils",
    "crop_readout",
    "crop_readout_np",
    "cropped_birdcage_maps",
    "cupy_gpu",
    "data_consistency",
    "espirit_calibration",
    "espirit_maps",
    "espirit_sens",
    "expand_coils",
    "fft2c",
    "fft2c_np",
    "file_mask",
    "fixed_seed",
    "forward_op",
    "ifft2c",
    "ifft2c_np",
    "kspace_noise_variance",
    "map_misfit",
    "make_mask_func",
    "noise_correlation",
    "partial_fourier",
    "random_noise_covariance",
    "readout_image",
    "readout_margin_noise",
    "restore_noise_floor",
    "rss",
    "rss_noise_mean_ratio",
    "rss_np",
    "sample_mask",
    "sample_noise_variance",
    "sens_expand",
    "sens_expand_np",
    "sens_reduce",
    "object_mask",
    "zero_outside_maps",
    "sense_toward_prior",
    "smooth_coil_phase",
    "smooth_phase",
    "soft_data_consistency",
    "unscaled_smooth_phase",
    "white_noise",
    "zero_filled_rss",
    "zero_filled_rss_np",
]
