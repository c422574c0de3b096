"""BRISQUE (Mittal et al., 2012), the no-reference quality score BR-Gen filters with (> 60 dropped).

The trained model is the one the ``brisque`` package (0.2.0) ships inside its wheel: an
epsilon-SVR in LIBSVM format (``svm.txt``) plus the feature scaling (``normalize.pickle``).
Nothing is downloaded. The package itself is not called, for three reasons found on
brisque 0.2.0:

- ``BRISQUE.score`` fails under numpy >= 2.x ("only 0-dimensional arrays can be converted to
  Python scalars": its AGGD fit returns 1-element arrays that ``float()`` no longer accepts);
- importing it imports ``requests`` (for its URL mode) and ``skimage.io``, about 1.3 s, and
  patches ``scipy.ndarray`` as a side effect;
- ``score`` computes the full-scale MSCN coefficients twice and throws one copy away.

So the 36 features are computed here exactly as the package computes them (grey in [0, 1] via
skimage's ``rgb2gray``; 7x7 Gaussian window, sigma 7/6, zero padding; MSCN with C = 1/255;
AGGD fits of the MSCN map and its four neighbour products; the same at half scale by bicubic
``cv2.resize``), and the bundled SVR predicts through ``libsvm`` (the package's own dependency).
tests/models/test_quality.py checks the scores against the package's code path.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import cv2
import numpy as np
from scipy import optimize, special
from skimage.color import rgb2gray

from .base import QUALITY_SCORERS, QualityScorer, check_image

_WINDOW = 7
_SIGMA = 7 / 6
_C = 1 / 255


class _PlainDataUnpickler(pickle.Unpickler):
    """Reads pickles of plain data (dict, list, float, str) and refuses any class or function, so a
    ``normalize.pickle`` from a ``model_dir`` in conf cannot execute code when loaded."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is allowed in this pickle")


def bundled_model_dir() -> Path:
    """Folder of the model files inside the installed ``brisque`` wheel (found, not imported).

    Raises:
        FileNotFoundError: the ``brisque`` package is not installed or lacks its model files.
    """
    spec = importlib.util.find_spec("brisque")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'brisque' package is not installed; pip install brisque==0.2.0")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in ("svm.txt", "normalize.pickle"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"BRISQUE model file {folder / name} is missing")
    return folder


def _gaussian_window() -> np.ndarray:
    y, x = np.indices((_WINDOW, _WINDOW)) - _WINDOW // 2
    kernel = np.exp(-(x**2 + y**2) / (2 * _SIGMA**2))
    return kernel / kernel.sum()


def mscn_coefficients(grey: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a float grey image in [0, 1]."""
    kernel = _gaussian_window()
    # filter2D correlates; the window is symmetric, so this is scipy's convolve2d(..., "same")
    # with zero padding, as in the package, at a fraction of the cost.
    mu = cv2.filter2D(grey, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
    mu_sq = cv2.filter2D(grey * grey, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
    sigma = np.sqrt(np.abs(mu * mu - mu_sq))
    return (grey - mu) / (sigma + _C)


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit: (alpha, mean, left variance, right variance)."""
    x = x.ravel()
    left, right = x[x < 0], x[x >= 0]
    if left.size == 0 or right.size == 0:
        raise ValueError("BRISQUE is undefined on this image: it has no texture (flat image)")
    left_sq = float(np.mean(left**2))
    right_sq = float(np.mean(right**2))
    if left_sq == 0 or right_sq == 0:
        raise ValueError("BRISQUE is undefined on this image: it has no texture (flat image)")
    gamma = np.sqrt(left_sq) / np.sqrt(right_sq)
    r_hat = float(np.mean(np.abs(x))) ** 2 / float(np.mean(x**2))
    big_r_hat = r_hat * (gamma**3 + 1) * (gamma + 1) / (gamma**2 + 1) ** 2

    def phi(alpha: np.ndarray) -> np.ndarray:
        return special.gamma(2 / alpha) ** 2 / (special.gamma(1 / alpha) * special.gamma(3 / alpha))

    alpha = float(optimize.root(lambda z: phi(z) - big_r_hat, [0.2]).x[0])
    constant = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    shape_ratio = special.gamma(2 / alpha) / special.gamma(1 / alpha)
    mean = (np.sqrt(right_sq) - np.sqrt(left_sq)) * constant * shape_ratio
    return alpha, float(mean), left_sq, right_sq


def _scale_features(grey: np.ndarray) -> list[float]:
    mscn = mscn_coefficients(grey)
    alpha, _, left_sq, right_sq = _aggd_fit(mscn)
    features = [alpha, (left_sq + right_sq) / 2]
    for product in (
        mscn[:, :-1] * mscn[:, 1:],  # horizontal
        mscn[:-1, :] * mscn[1:, :],  # vertical
        mscn[:-1, :-1] * mscn[1:, 1:],  # main diagonal
        mscn[1:, :-1] * mscn[:-1, 1:],  # secondary diagonal
    ):
        features.extend(_aggd_fit(product))
    return features


def brisque_features(image: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features (18 at full scale, 18 at half scale) of an RGB uint8 image."""
    grey = rgb2gray(image)
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    return np.array(_scale_features(grey) + _scale_features(half), dtype=np.float64)


class BrisqueScorer(QualityScorer):
    """No-reference BRISQUE; lower = better, about 0 (pristine) to 100+ (badly distorted).

    Args:
        model_dir: folder with ``svm.txt`` and ``normalize.pickle``; default: the files bundled
            in the installed ``brisque`` wheel.

    The score is the SVR's raw output, not clipped: very clean images can score slightly
    below 0.
    """

    name = "brisque"
    higher_is_better = False
    valid_range = (-20.0, 150.0)
    # The half-scale pass needs a few 7x7 windows; below this the statistics are noise.
    min_side = 32

    def __init__(self, model_dir: str | Path | None = None):
        from libsvm import svmutil  # only here: the C library is needed by this scorer alone

        folder = Path(model_dir) if model_dir is not None else bundled_model_dir()
        svm_path = folder / "svm.txt"
        if not svm_path.is_file():
            raise FileNotFoundError(f"BRISQUE SVM model {svm_path} does not exist")
        self._svmutil = svmutil
        self._model = svmutil.svm_load_model(str(svm_path))
        if self._model is None:
            raise ValueError(f"LIBSVM could not read the BRISQUE model {svm_path}")
        with open(folder / "normalize.pickle", "rb") as f:
            scaling = _PlainDataUnpickler(f).load()  # plain dicts/lists/floats only: no code runs
        self._min = np.asarray(scaling["min_"], dtype=np.float64)
        self._max = np.asarray(scaling["max_"], dtype=np.float64)
        self.model_dir = folder

    def score(self, image: np.ndarray) -> float:
        """BRISQUE of ``image`` ((H, W, 3) uint8 RGB, sides >= 32); lower = better.

        Raises:
            TypeError / ValueError: not an (H, W, 3) uint8 array, smaller than 32 x 32, or flat
                (no texture: BRISQUE's statistics are undefined).
        """
        check_image(image, self.min_side)
        features = brisque_features(image)
        scaled = -1 + 2.0 * (features - self._min) / (self._max - self._min)
        nodes, _ = self._svmutil.gen_svm_nodearray([float(v) for v in scaled], isKernel=False)
        # The libsvm wheel is built with OpenMP: its parallel sum over the support vectors rounds
        # differently from call to call (~1e-13); one thread makes the score reproducible.
        with _one_openmp_thread():
            return float(self._svmutil.libsvm.svm_predict(self._model, nodes))


_OPENMP = None


def _one_openmp_thread():
    global _OPENMP
    if _OPENMP is None:  # built once (it enumerates the loaded libraries), after libsvm is loaded
        from threadpoolctl import ThreadpoolController

        _OPENMP = ThreadpoolController()
    return _OPENMP.limit(limits=1, user_api="openmp")


@QUALITY_SCORERS.register("brisque", description="no-reference BRISQUE, bundled SVR of brisque 0.2.0")
def build_brisque(model_dir: str | Path | None = None) -> BrisqueScorer:
    return BrisqueScorer(model_dir=model_dir)
