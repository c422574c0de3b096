"""EditLens Kedro package: one sub-package per stage (ingest, perceive, inpaint, filter,
split, train, evaluate), each wrapping the pure-PyTorch/numpy code in ``models``."""

__version__ = "0.1.0"
