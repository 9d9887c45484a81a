"""The demo archive: one small XNAT project that shows every problem the survey looks for.

Built from `synth`, so it is deterministic (fixed UIDs, bytes and mtimes) and quick to write. The
manifest says what a correct survey must find; the tests hold the demo to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import ImplicitVRLittleEndian

from container_app.demo import synth
from container_app.demo.synth import (
    CopyKind,
    CopySpec,
    ExtraFile,
    ExtraKind,
    FileSpec,
    InstanceSpec,
    Naming,
    ResourceSpec,
    ScanSpec,
    SessionLayout,
    SessionSpec,
    TruncateAt,
)

DEMO_PROJECT = "DEMO"
DEMO_SESSION = "DEMO_MR1"
#: Synthetic, but it is exactly the kind of value legacy names leak.
DEMO_PATIENT_NAME = "Doe^Jane"


@dataclass(frozen=True)
class DemoManifest:
    """What the demo archive holds and what a correct survey of its DICOM resources must report.

    Counts follow XNAT's report fields; `identifying_names` counts files whose name carries the patient's
    name. Bad files are counted over files on disk, including the non-DICOM `notes.txt`.
    """

    root: Path  # the folder passed to build_demo_archive; the project is `root/DEMO`
    session_root: Path
    layout: SessionLayout
    total_files: int  # files in the DICOM resources, catalogs excluded
    total_uids: int  # distinct readable instances
    conforming: int
    mismatched: int
    duplicate_groups: int
    files_in_duplicates: int
    nonactionable_duplicate_groups: int
    bad_files: int
    identifying_names: int
    resource_status: dict[str, str]  # scan ID -> XNAT request status after a survey

    def expected_totals(self) -> dict[str, int]:
        """The `totals` of a correct survey report of the session, by their names in the report."""
        return {"files": self.total_files, "mismatchedFiles": self.mismatched, "duplicates": self.duplicate_groups,
                "filesInDuplicates": self.files_in_duplicates,
                "nonActionableDuplicates": self.nonactionable_duplicate_groups, "badFiles": self.bad_files,
                "identifyingNames": self.identifying_names}


def _study() -> InstanceSpec:
    """Study-level values shared by every instance of the demo session."""
    study_uid = synth.uid(DEMO_PROJECT, DEMO_SESSION, "study")
    return InstanceSpec(
        sop_instance_uid=synth.uid(study_uid, "placeholder"),  # replaced per instance
        study_instance_uid=study_uid,
        patient_name=DEMO_PATIENT_NAME,
        patient_id="DEMO001",
        patient_birth_date="19700101",
        accession_number="DEMOACC1",
        study_description="Brain MRI",
        study_date="20240102",
        study_time="101530.250000",
    )


def _scans() -> tuple[ScanSpec, ...]:
    study = _study()
    # Scan 1: archived by XNAT 1.8.7+, every file already at its expected name.
    scan1 = ScanSpec.conforming("1", synth.series_instances(study, 1, 10))
    # Scan 2: archived before 1.8.7 by an implicit-VR scanner; the legacy names carry the patient's name.
    legacy = synth.series_instances(dataclasses.replace(study, transfer_syntax=ImplicitVRLittleEndian), 2, 8)
    scan2 = ScanSpec(scan_id="2", files=tuple(FileSpec(instance=i, name=Naming.LEGACY) for i in legacy))
    # Scan 3: sent twice across an upgrade; the merge matched by file name, so each instance is stored
    # under its legacy and its XNAT name. The fourth was re-sent with an operator's comment (ImageComments,
    # which PS3.15 E.1-1 removes): bytes differ, and the newer copy discloses more, so the older one stays.
    dup = synth.series_instances(study, 3, 4)
    scan3 = ScanSpec(scan_id="3", files=(
        *(FileSpec(instance=i, name=Naming.LEGACY, copies=(CopySpec(name=Naming.XNAT),)) for i in dup[:3]),
        FileSpec(instance=dup[3], name=Naming.LEGACY,
                 copies=(CopySpec(name=Naming.XNAT, kind=CopyKind.COMMENTED),)),
    ))
    # Scan 4: an upload that went wrong: a file cut short, operator notes, and client-supplied names.
    odd = synth.series_instances(study, 4, 3)
    scan4 = ScanSpec(
        scan_id="4",
        files=(
            FileSpec(instance=odd[0], truncate_to=TruncateAt.HEADER),
            FileSpec(instance=odd[1], name="IM0001"),
            FileSpec(instance=odd[2], name="IM0002"),
        ),
        extras=(ExtraFile(name="notes.txt", kind=ExtraKind.TEXT),),
    )
    return scan1, scan2, scan3, scan4


def _snapshots() -> ResourceSpec:
    # XNAT's QC snapshots: a non-DICOM session resource that a DICOM survey must leave alone.
    files = tuple(ExtraFile(name=f"{DEMO_SESSION}_{scan}_qc.png", kind=ExtraKind.PNG) for scan in range(1, 5))
    return ResourceSpec(label="SNAPSHOTS", format="PNG", files=files)


def build_demo_archive(root: Path) -> DemoManifest:
    """Write the demo project under `root` (`root/DEMO/arc001/DEMO_MR1/...`) and describe it."""
    project = synth.build_project(root, DEMO_PROJECT, [
        SessionSpec(label=DEMO_SESSION, scans=_scans(), resources=(_snapshots(),)),
    ])
    layout = project.session(DEMO_SESSION)
    return DemoManifest(
        root=root,
        session_root=layout.root,
        layout=layout,
        total_files=10 + 8 + 8 + 4,
        total_uids=10 + 8 + 4 + 2,
        conforming=10,
        mismatched=8 + 2,
        duplicate_groups=4,
        files_in_duplicates=8,
        nonactionable_duplicate_groups=0,
        bad_files=2,
        identifying_names=8 + 4,
        resource_status={"1": "CONFORMING", "2": "DIVERGENT", "3": "DIVERGENT", "4": "DIVERGENT"},
    )
