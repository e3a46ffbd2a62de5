"""mfrbench: masked-face recognition benchmarks that are correct, fast and reproducible."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mfrbench")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
