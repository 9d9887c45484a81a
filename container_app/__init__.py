"""Survey and mitigate badly named and duplicated DICOM files in an XNAT archive."""

# The one place the version is written: pyproject.toml reads it from here (importlib.metadata would cost
# every run a scan of the installed distributions at start-up).
__version__ = "0.1.0"

__all__ = ["__version__"]
