"""Survey and mitigate badly named and duplicated DICOM files in an XNAT archive."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xnat-resource-survey")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
