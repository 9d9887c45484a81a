"""Synthetic DICOM files and XNAT archive layouts with planted problems: the synthesizer's public face.

This is the one module tests, benchmarks and the demo archive import (`from container_app.demo import
synth`, then `synth.InstanceSpec`, `synth.build_session`, `synth.Plant`, ...). It only re-exports; the
code lives in modules named after what they build, each importing only those before it:

- `instances`: deterministic UIDs, `InstanceSpec` and its encoded bytes, enhanced multi-frame
- `names`: XNAT's default-template and legacy (pre-1.8.7) names, `header_value`
- `damage`: truncation, gzip, non-DICOM files, DICOMDIRs, PNGs
- `specs`: what to plant (`FileSpec`, `ScanSpec`, ...) and what was planted (`Plant`, the layouts)
- `catalogs`: resource catalog XML
- `builder`: writes sessions, projects and bare resources (`build_session`, ...)

Everything is deterministic: the same specs give the same bytes, names, UIDs and mtimes, so tests can
assert exact results and the demo report never changes between runs. Pure functions build bytes and
names; only the functions named ``write_*``, ``build_*``, ``truncate`` and ``gzip_file`` touch the file
system.
"""

from __future__ import annotations

# Callers import these names from here, never from the modules below, so the split can change
# without touching them; `__all__` is the public surface (and tells mypy and ruff these are re-exports).
from container_app.demo.builder import (
    DEFAULT_MTIME,
    build_project,
    build_resource,
    build_session,
    session_root,
)
from container_app.demo.catalogs import CatalogEntrySpec, catalog_xml
from container_app.demo.damage import (
    NOT_DICOM_TEXT,
    TruncateAt,
    dicomdir_bytes,
    gzip_bytes,
    gzip_file,
    png_bytes,
    truncate,
    truncation_offset,
    write_dicomdir,
    write_not_dicom,
)
from container_app.demo.instances import (
    DEFAULT_SERIES_UID,
    DEFAULT_STUDY_UID,
    ENHANCED_MR_IMAGE_STORAGE,
    MEDIA_STORAGE_DIRECTORY_STORAGE,
    MR_IMAGE_STORAGE,
    TRANSFER_SYNTAXES,
    UID_ROOT,
    InstanceSpec,
    enhanced_mr,
    instance_bytes,
    uid,
    write_bytes,
    write_instance,
)
from container_app.demo.names import header_value, legacy_hash, legacy_name, xnat_hash, xnat_name
from container_app.demo.specs import (
    BAD_PLANTS,
    CopyKind,
    CopySpec,
    ExtraFile,
    ExtraKind,
    FileSpec,
    Naming,
    Plant,
    PlantedFile,
    ProjectLayout,
    ResourceLayout,
    ResourceSpec,
    ScanSpec,
    SessionLayout,
    SessionSpec,
    commented_copy,
    differing_copy,
    series_instances,
)

__all__ = [
    "BAD_PLANTS",
    "DEFAULT_MTIME",
    "DEFAULT_SERIES_UID",
    "DEFAULT_STUDY_UID",
    "ENHANCED_MR_IMAGE_STORAGE",
    "MEDIA_STORAGE_DIRECTORY_STORAGE",
    "MR_IMAGE_STORAGE",
    "NOT_DICOM_TEXT",
    "TRANSFER_SYNTAXES",
    "UID_ROOT",
    "CatalogEntrySpec",
    "CopyKind",
    "CopySpec",
    "ExtraFile",
    "ExtraKind",
    "FileSpec",
    "InstanceSpec",
    "Naming",
    "Plant",
    "PlantedFile",
    "ProjectLayout",
    "ResourceLayout",
    "ResourceSpec",
    "ScanSpec",
    "SessionLayout",
    "SessionSpec",
    "TruncateAt",
    "build_project",
    "build_resource",
    "build_session",
    "catalog_xml",
    "commented_copy",
    "dicomdir_bytes",
    "differing_copy",
    "enhanced_mr",
    "gzip_bytes",
    "gzip_file",
    "header_value",
    "instance_bytes",
    "legacy_hash",
    "legacy_name",
    "png_bytes",
    "series_instances",
    "session_root",
    "truncate",
    "truncation_offset",
    "uid",
    "write_bytes",
    "write_dicomdir",
    "write_instance",
    "write_not_dicom",
    "xnat_hash",
    "xnat_name",
]
