"""The physics-randomised simulator: every factor drawn per volume from a range in :class:`SimConfig`.

One volume = one random draw of anatomy (MNI tissue maps: orientation, slab position, rotation, scale,
elastic deformation, contrast, bias field, skull and scalp thickness), field of view and matrix (with or
without readout oversampling), coil model, coil count, coil phase, coil noise covariance, SNR and image
phase. The random stream depends only on (seed, split, index), so a volume is reproducible on its own
and volumes can be built in parallel. The splits:

- ``train`` / ``val`` / ``test``: MNI anatomy, training ranges;
- ``shift`` (dipy anatomy, never in training): real single-subject slices, training physics ranges;
- ``physics`` (physics shift): MNI anatomy, but a coil model, noise correlation and matrix outside
  the training ranges (``shift_*`` fields).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from mrirecon.data import anatomy
from mrirecon.data.sources import shift_anatomy
from mrirecon.physics import (
    COIL_MODELS,
    coil_maps,
    coil_noise,
    random_noise_covariance,
    sens_expand_np,
    smooth_phase,
    zero_filled_rss_np,
)

Matrix = tuple[int, int, int, int]  # k-space (H readout, W phase encode) and target (h, w)


@dataclass(frozen=True)
class SimConfig:
    """Ranges of every randomised factor (uniform unless noted; (lo, hi) inclusive for integers).

    Split sizes: volumes per split and slices per volume.
    Anatomy: ``orientations`` drawn uniformly; ``rotation_deg`` about each axis within +-;
    ``scale`` per axis; ``elastic_mm`` std of the smooth displacement; ``shift_mm`` in-plane head shift
    within +-; ``slab`` slab centre within +- this fraction of the brain's half-extent along the normal;
    ``gap_mm`` slice spacing; ``contrasts`` drawn uniformly; ``bias`` max |log| of the bias field;
    ``skull_mm`` / ``scalp_mm`` band thickness; ``fov_mm`` target field of view along its longer side;
    ``image_phase`` amplitude (rad) of the smooth image phase; ``object_fwhm_mm`` in-plane Gaussian blur of the
    anatomy (FWHM, mm) before it is acquired: objects smoother than the template, as an anatomy of coarser
    voxels is (off when the range is (0, 0), and then no random number is drawn for it; a draw below 0 leaves
    that volume sharp, so (-4, 4) blurs half of the volumes by 0-4 mm). ``source_voxel_mm``: the anatomy as a
    source of coarser voxels would give it (the way a real 2-4 mm scan is made into a simulator's object):
    averaged over square voxels of the drawn size, then interpolated linearly back onto the grid, which leaves
    the creases of linear interpolation between voxel centres; a draw at or below the pixel size leaves the
    volume as it is, and (0, 0) draws nothing. ``voxel_texture``: std of a multiplicative Gaussian texture on
    those coarse voxels (a single subject's fine structure and its scan's own noise, which the template, an
    average of many subjects, lacks; dipy's 2-4 mm slices are 2-3 times rougher than the template at their size).
    Acquisition: ``matrices`` drawn uniformly; ``coils`` count; ``coil_models`` drawn uniformly;
    ``coil_phase`` amplitude (rad) of each coil's smooth phase; ``noise_correlation`` max coil-pair
    correlation rho; ``noise_latent`` number of shared noise sources; ``snr`` (log-uniform): mean
    object magnitude per coil over noise std; ``peak`` (log-uniform): target scale, fastMRI-like.
    Physics-shift split: ``shift_matrices``, ``shift_coils``, ``shift_coil_models``,
    ``shift_noise_correlation``, ``shift_noise_latent`` replace the acquisition ranges; they must lie
    outside the training ones (checked in ``__post_init__``).
    ``shift_anatomy``: NIfTI files (or .npy slices) whose anatomy replaces dipy's in the shift split, e.g. real
    subjects held out for validation.
    ``train_physics="shift"`` draws the train / val / test splits from the physics-shift ranges too: the
    data of a model trained on the target physics, which measures the shift gap (other seeds than the
    physics-shift split's volumes).
    """

    slices: int = 16
    n_train: int = 40
    n_val: int = 4
    n_test: int = 4
    n_shift: int = 3
    n_physics: int = 4
    orientations: tuple[str, ...] = ("AX", "COR", "SAG")
    rotation_deg: float = 12.0
    scale: tuple[float, float] = (0.88, 1.12)
    elastic_mm: tuple[float, float] = (0.0, 3.0)
    shift_mm: float = 8.0
    slab: float = 0.6
    gap_mm: tuple[float, float] = (1.0, 6.0)
    contrasts: tuple[str, ...] = ("T1", "T2", "PD", "FLAIR")
    bias: tuple[float, float] = (0.0, 0.4)
    skull_mm: tuple[float, float] = (3.0, 7.0)
    scalp_mm: tuple[float, float] = (3.0, 8.0)
    fov_mm: tuple[float, float] = (200.0, 250.0)
    image_phase: tuple[float, float] = (0.0, 3.0)
    object_fwhm_mm: tuple[float, float] = (0.0, 0.0)
    source_voxel_mm: tuple[float, float] = (0.0, 0.0)
    voxel_texture: tuple[float, float] = (0.0, 0.25)
    matrices: tuple[Matrix, ...] = (
        (640, 320, 320, 320),  # fastMRI brain: 2x readout oversampling
        (640, 368, 320, 320),  # and phase-encode oversampling
        (320, 320, 320, 320),
        (256, 256, 256, 256),
        (512, 256, 256, 256),
        (320, 256, 320, 256),  # non-square target
    )
    coils: tuple[int, int] = (4, 32)
    coil_models: tuple[str, ...] = ("birdcage", "loops")
    coil_phase: tuple[float, float] = (0.0, 2.0)
    noise_correlation: tuple[float, float] = (0.0, 0.3)
    noise_latent: tuple[int, int] = (2, 4)
    snr: tuple[float, float] = (8.0, 300.0)
    peak: tuple[float, float] = (3e-4, 1.2e-3)
    shift_matrices: tuple[Matrix, ...] = ((576, 384, 384, 384),)  # 1.5x readout oversampling, 384 target
    shift_coils: tuple[int, int] = (12, 20)
    shift_coil_models: tuple[str, ...] = ("planar",)
    shift_noise_correlation: tuple[float, float] = (0.45, 0.6)
    shift_noise_latent: tuple[int, int] = (1, 1)
    shift_anatomy: tuple[str, ...] = ()
    test_accelerations: tuple[int, ...] = (4, 8)
    train_physics: str = "default"

    def __post_init__(self) -> None:
        for m in (*self.matrices, *self.shift_matrices):
            if m[0] < m[2] or m[1] < m[3]:
                raise ValueError(f"matrix {m}: the k-space must be at least the target size")
        if set(self.shift_coil_models) & set(self.coil_models):
            raise ValueError("the physics-shift coil models must not be used in training")
        if set(self.shift_matrices) & set(self.matrices):
            raise ValueError("the physics-shift matrices must not be used in training")
        if self.shift_noise_correlation[0] <= self.noise_correlation[1]:
            raise ValueError("the physics-shift noise correlation must exceed the training range")
        if self.train_physics not in ("default", "shift"):
            raise ValueError(f"train_physics must be 'default' or 'shift', got {self.train_physics!r}")
        bad = set(self.coil_models) - set(COIL_MODELS) or set(self.contrasts) - set(anatomy.CONTRASTS)
        if bad:
            raise ValueError(f"unknown coil model or contrast: {sorted(bad)}")

    def counts(self) -> dict[str, int]:
        return {
            "train": self.n_train,
            "val": self.n_val,
            "test": self.n_test,
            "shift": self.n_shift,
            "physics": self.n_physics,
        }


SIM_PRESETS: dict[str, SimConfig] = {
    # GPU training at fastMRI brain sizes (see the README for the command)
    "random": SimConfig(),
    # the same, with anatomy blurred by 0-4 mm FWHM before it is acquired (objects of coarser resolution)
    "random-resolution": SimConfig(object_fwhm_mm=(0.0, 4.0)),
    # half of the volumes sharp, half blurred by 0-4 mm: the shipped default's third leg (codecs/continue_default.sh)
    "random-mixed-resolution": SimConfig(object_fwhm_mm=(-4.0, 4.0)),
    # and, independently, about half of the volumes made from sources of coarser voxels, up to 4 mm (the default's
    # fourth to eighth legs, codecs/continue_default.sh)
    "random-coarse-voxels": SimConfig(object_fwhm_mm=(-4.0, 4.0), source_voxel_mm=(-2.0, 4.0)),
    # CPU: `make fit`-sized, seconds to build
    "random-small": SimConfig(
        slices=6,
        n_train=20,
        n_val=4,
        n_test=4,
        n_shift=3,
        n_physics=3,
        matrices=((128, 128, 128, 128), (256, 128, 128, 128), (128, 144, 128, 128), (160, 128, 160, 128)),
        coils=(4, 12),
        shift_matrices=((216, 144, 144, 144),),
        shift_coils=(8, 12),
    ),
    # unit tests
    "random-tiny": SimConfig(
        slices=2,
        n_train=2,
        n_val=1,
        n_test=1,
        n_shift=1,
        n_physics=1,
        matrices=((64, 64, 64, 64), (128, 64, 64, 64), (64, 72, 64, 64)),
        coils=(4, 6),
        shift_matrices=((96, 80, 80, 80),),
        shift_coils=(4, 6),
    ),
}


@dataclass(frozen=True)
class Draw:
    """One volume's random factors (stored as JSON in the file's ``synth_params`` attribute)."""

    matrix: Matrix
    pixel_mm: float
    coil_model: str
    num_coils: int
    coil_phase: float
    noise_correlation: float
    noise_latent: int
    snr: float
    peak: float
    image_phase: float
    contrast: str = ""
    orientation: str = ""
    object_fwhm_mm: float = 0.0
    source_voxel_mm: float = 0.0
    voxel_texture: float = 0.0


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_physics(cfg: SimConfig, physics_shift: bool, rng: np.random.Generator) -> Draw:
    """The acquisition factors of one volume (training ranges, or the physics-shift ones)."""
    matrices = cfg.shift_matrices if physics_shift else cfg.matrices
    models = cfg.shift_coil_models if physics_shift else cfg.coil_models
    coil_range = cfg.shift_coils if physics_shift else cfg.coils
    corr = cfg.shift_noise_correlation if physics_shift else cfg.noise_correlation
    latent = cfg.shift_noise_latent if physics_shift else cfg.noise_latent
    matrix = tuple(int(v) for v in matrices[int(rng.integers(len(matrices)))])
    return Draw(
        matrix=matrix,
        pixel_mm=float(rng.uniform(*cfg.fov_mm)) / max(matrix[2], matrix[3]),
        coil_model=str(models[int(rng.integers(len(models)))]),
        num_coils=int(rng.integers(coil_range[0], coil_range[1] + 1)),
        coil_phase=float(rng.uniform(*cfg.coil_phase)),
        noise_correlation=float(rng.uniform(*corr)),
        noise_latent=int(rng.integers(latent[0], latent[1] + 1)),
        snr=_loguniform(rng, *cfg.snr),
        peak=_loguniform(rng, *cfg.peak),
        image_phase=float(rng.uniform(*cfg.image_phase)),
    )


def mni_slices(cfg: SimConfig, draw: Draw, rng: np.random.Generator) -> tuple[np.ndarray, Draw]:
    """A randomised MNI slice stack [S,H,W] on the k-space grid of ``draw.matrix``."""
    orientation = str(cfg.orientations[int(rng.integers(len(cfg.orientations)))])
    contrast = str(cfg.contrasts[int(rng.integers(len(cfg.contrasts)))])
    normal_axis = int(np.argmax(np.abs(anatomy.ORIENTATIONS[orientation][2])))
    half = float(anatomy.load_tissues()["half"][normal_axis])
    centre = rng.uniform(-cfg.shift_mm, cfg.shift_mm, size=3)
    centre[normal_axis] = rng.uniform(-cfg.slab, cfg.slab) * half
    geometry = anatomy.SliceGeometry(
        orientation=orientation,
        rotation_deg=tuple(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg, size=3)),
        scale=tuple(rng.uniform(*cfg.scale, size=3)),
        centre_mm=tuple(centre),
        gap_mm=float(rng.uniform(*cfg.gap_mm)),
        elastic_mm=float(rng.uniform(*cfg.elastic_mm)),
    )
    image = anatomy.brain_slices(
        cfg.slices,
        draw.matrix[:2],
        draw.pixel_mm,
        geometry,
        contrast,
        float(rng.uniform(*cfg.bias)),
        float(rng.uniform(*cfg.skull_mm)),
        float(rng.uniform(*cfg.scalp_mm)),
        rng,
    )
    draw = replace(draw, contrast=contrast, orientation=orientation)
    if cfg.object_fwhm_mm[1] > 0:
        fwhm = max(0.0, float(rng.uniform(*cfg.object_fwhm_mm)))
        if fwhm > 0:
            sigma_px = fwhm / (2 * np.sqrt(2 * np.log(2))) / draw.pixel_mm
            image = ndimage.gaussian_filter(image, (0, sigma_px, sigma_px), mode="constant").astype(image.dtype)
            draw = replace(draw, object_fwhm_mm=fwhm)
    if cfg.source_voxel_mm[1] > 0:
        voxel = float(rng.uniform(*cfg.source_voxel_mm))
        if voxel > draw.pixel_mm:
            texture = float(rng.uniform(*cfg.voxel_texture))
            image = coarse_voxels(image, voxel / draw.pixel_mm, texture, rng)
            draw = replace(draw, source_voxel_mm=voxel, voxel_texture=texture)
    return image, draw


def coarse_voxels(image: np.ndarray, factor: float, texture: float, rng: np.random.Generator) -> np.ndarray:
    """[S,H,W] -> [S,H,W]: averaged over square voxels of ``factor`` pixels, each scaled by 1 + ``texture`` x a
    standard normal draw, then linearly interpolated back."""
    _, H, W = image.shape
    small = (max(2, round(H / factor)), max(2, round(W / factor)))
    # a Gaussian of the box's standard deviation stands in for the voxel average (no aliasing on the way down)
    sigma = factor / np.sqrt(12.0)
    averaged = ndimage.gaussian_filter(image, (0, sigma, sigma), mode="constant")
    coarse = ndimage.zoom(averaged, (1, small[0] / H, small[1] / W), order=1, grid_mode=True, mode="grid-constant")
    coarse *= np.clip(1 + texture * rng.standard_normal(coarse.shape), 0, None).astype(coarse.dtype)
    back = ndimage.zoom(coarse, (1, H / small[0], W / small[1]), order=1, grid_mode=True, mode="grid-constant")
    return np.clip(back, 0, None).astype(image.dtype)


def acquire(image: np.ndarray, draw: Draw, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude slices [S,H,W] -> (noisy fully sampled k-space complex64 [S,C,H,W], RSS target [S,h,w])."""
    S, H, W = image.shape
    h, w = draw.matrix[2:]
    maps = coil_maps(draw.coil_model, draw.num_coils, (H, W), (h, w), rng, draw.coil_phase)
    cov = random_noise_covariance(draw.num_coils, draw.noise_correlation, rng, latent=draw.noise_latent)
    phase = np.exp(1j * smooth_phase((H, W), draw.image_phase, rng)).astype(np.complex64)
    image = image / max(float(image.max()), 1e-12) * draw.peak
    fg = image > 0.1 * draw.peak
    mean_coil = float(np.abs(maps).mean(0)[fg.any(0)].mean()) if fg.any() else 1.0
    sigma = float(image[fg].mean() if fg.any() else draw.peak) * mean_coil / draw.snr
    kspace = np.empty((S, draw.num_coils, H, W), np.complex64)
    for s in range(S):  # slice by slice: peak memory stays at one slice of temporaries
        kspace[s] = sens_expand_np(image[s] * phase, maps) + coil_noise((draw.num_coils, H, W), cov, sigma, rng)
    return kspace, zero_filled_rss_np(kspace, (h, w))


def pad_to(image: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Zero-pad [S,h,w] centred into [S,H,W] (H >= h, W >= w)."""
    S, h, w = image.shape
    out = np.zeros((S, *grid), np.float32)
    top, left = (grid[0] - h) // 2, (grid[1] - w) // 2
    out[:, top : top + h, left : left + w] = image
    return out


def simulate(cfg: SimConfig, split: str, rng: np.random.Generator, shift_source=None):
    """One volume of ``split`` -> (kspace [S,C,H,W], target [S,h,w], Draw, acquisition name)."""
    shifted = split == "physics" or (cfg.train_physics == "shift" and split in ("train", "val", "test"))
    draw = draw_physics(cfg, shifted, rng)
    if split == "shift":
        small, acq = shift_anatomy(shift_source, cfg.slices, draw.matrix[2:], draw.pixel_mm, rng)
        image = pad_to(small, draw.matrix[:2])
        draw = replace(draw, contrast=acq)
    else:
        image, draw = mni_slices(cfg, draw, rng)
        acq = f"{draw.orientation}{draw.contrast}"
    kspace, target = acquire(image, draw, rng)
    return kspace, target, draw, acq


def draw_json(draw: Draw) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(draw), sort_keys=True)
