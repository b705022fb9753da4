# Type stub of the compiled module mgfast._core (src/python/bindings.cpp). Private: use mgfast.
import numpy as np

__version__: str
built_with_cuda: bool
N_PIX: int
N_ARMS: int
RESOLVING_POWER: float
DLNLAMBDA: float
ARMS: list[tuple[str, float, float, int, int]]
PIXEL_FLAGS: dict[str, int]
SPECTRUM_FLAGS: dict[str, int]

def cuda_device_count() -> int: ...
def cuda_device_name(device: int) -> str: ...
def arm_npix_from_rule(arm: int) -> int: ...
def grid_wavelength() -> np.ndarray: ...
def grid_lo_edge() -> np.ndarray: ...
def grid_hi_edge() -> np.ndarray: ...
def grid_arm_index() -> np.ndarray: ...
def grid_edge_distance() -> np.ndarray: ...
def pixel_of_wavelength(lam: np.ndarray) -> np.ndarray: ...
def wavelength_of_pixel(x: np.ndarray) -> np.ndarray: ...
def preprocess(
    flux: np.ndarray,
    wave: np.ndarray | None,
    err: np.ndarray | None,
    mask: np.ndarray | None,
    resolution: np.ndarray | None,
    err_is_ivar: bool,
    bad_bits: int,
    normalise: bool,
    min_pixel_good: float,
    min_arm_good: float,
    knot_spacing: float,
    penalty: float,
    clip_low: float,
    clip_high: float,
    grow: int,
    max_iter: int,
    sigma_floor: float,
    spike_sigma: float,
    return_continuum: bool,
    device: str,
    threads: int,
) -> dict[str, np.ndarray]: ...
def median_snr(ivar: np.ndarray, threads: int = 0) -> np.ndarray: ...
def lsf_degrade(
    wave: np.ndarray,
    flux: np.ndarray,
    err: np.ndarray | None,
    resolution: np.ndarray,
    r_out: float,
    threads: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

LINES: dict[str, tuple[float, float, float]]
SIM_MAX_ABSORBERS: int
SIM_MAX_COMPONENTS: int
SIM_MAX_INTERLOPERS: int
SIM_NO_ABSORBER_LAMBDA: float

def simulate(
    n: int,
    start: int,
    seed: int,
    snr: np.ndarray,
    absorber_fraction: float,
    max_absorbers: int,
    ew_min: float,
    ew_max: float,
    edge_margin: float,
    edge_snr_ratio: float,
    edge_taper_pixels: int,
    noise: bool,
    metals: bool,
    interloper_rate: float,
    forest: bool,
    unnormalised: bool,
    continuum_error: float,
    sky_residual: float,
    bad_pixel_rate: float,
    z_em_min: float,
    z_em_max: float,
    return_clean: bool,
    device: str,
    threads: int,
    sky: dict = ...,
) -> dict: ...

MF_MAX_WIDTHS: int
MF_MIN_WIDTH: float
MF_MAX_WIDTH: float
MF_MAX_TOP_K: int
MF_THIN_RATIO: float

def matched_filter(
    flux: np.ndarray,
    ivar: np.ndarray | None,
    widths: np.ndarray,
    top_k: int,
    ratio_lo: float,
    ratio_hi: float,
    ratio_sigma: float,
    device: str,
    threads: int,
) -> dict[str, np.ndarray]: ...

built_with_onednn: bool

def input_features(
    flux: np.ndarray,
    ivar: np.ndarray,
    channels: list[int],
    channels_last: bool = False,
    threads: int = 0,
) -> np.ndarray: ...
def onednn_version() -> str: ...

class CpuNetwork:
    """The oneDNN CPU backend (src/cpu/backend_cpu.hpp) for a mgfast.model layer list."""

    def __init__(
        self,
        n_in: int,
        layers: list[tuple[str, int, bool, np.ndarray | None, np.ndarray | None]],
        threads: int,
        batch_size: int,
        fast_conv: bool = True,
        bf16: bool = False,
        channels: list[int] = ...,
    ) -> None: ...
    def infer(
        self, flux: np.ndarray, ivar: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...
    @property
    def n_in(self) -> int: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def flops_per_spectrum(self) -> float: ...
    # the engine contract's (include/mgfast/engine.hpp)
    @property
    def input_features(self) -> list[str]: ...
    @property
    def precision(self) -> str: ...
    @property
    def device_string(self) -> str: ...

QUASAR_EMISSION_LINES: list[tuple[float, float, float]]
