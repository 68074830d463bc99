"""distributed_pz: survey-scale photometric redshifts with calibrated uncertainties."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("distributed_pz")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
