"""The two template files, built once per corpus with pydicom and then cut into bytes (``dicom_bytes``).

Each placeholder value is unique in the file so that ``cut_template`` can find it; the real values are spliced
in per file by the corpus generator. pydicom is imported inside the builders: only generating needs it.
"""

from __future__ import annotations

import struct
from typing import TypeVar

from bench.dicom_bytes import (
    ENHANCED_MR_STORAGE,
    EXPLICIT_VR_LE,
    MR_STORAGE,
    Template,
    Var,
    cut_template,
    set_undefined_length,
    write_dataset_bytes,
)

# a placeholder keeps its value's type (str for text elements, bytes for OB/OW), so that pydicom's typed
# attributes accept it
_V = TypeVar("_V", bytes, str)

SINGLE_VARS = {
    "MediaStorageSOPInstanceUID": Var("MediaStorageSOPInstanceUID", 0x00020003, "UI"),
    "SOPInstanceUID": Var("SOPInstanceUID", 0x00080018, "UI"),
    "StudyInstanceUID": Var("StudyInstanceUID", 0x0020000D, "UI"),
    "SeriesInstanceUID": Var("SeriesInstanceUID", 0x0020000E, "UI"),
    "SeriesNumber": Var("SeriesNumber", 0x00200011, "IS"),
    "InstanceNumber": Var("InstanceNumber", 0x00200013, "IS"),
    "AccessionNumber": Var("AccessionNumber", 0x00080050, "SH"),
    "SeriesDescription": Var("SeriesDescription", 0x0008103E, "LO"),
    "ContentTime": Var("ContentTime", 0x00080033, "TM"),
    "ReferencedSOPInstanceUID": Var("ReferencedSOPInstanceUID", 0x00081155, "UI"),
    "ImagePositionPatient": Var("ImagePositionPatient", 0x00200032, "DS"),
    "SliceLocation": Var("SliceLocation", 0x00201041, "DS"),
    "Rows": Var("Rows", 0x00280010, "US"),
    "Columns": Var("Columns", 0x00280011, "US"),
    "CSAImageHeaderInfo": Var("CSAImageHeaderInfo", 0x00291010, "OB"),
    "PixelData": Var("PixelData", 0x7FE00010, "OW"),
}

PATIENT = {"PatientName": "Doe^Jane^Q", "PatientID": "BENCH-0001", "PatientBirthDate": "19700101",
           "PatientSex": "F", "PatientAge": "053Y", "StudyDate": "20230412", "StudyTime": "101530.250000",
           "StudyDescription": "Head^Brain routine"}


def build_single_frame_template() -> Template:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID

    ph: dict[str, tuple[Var, bytes | str]] = {}

    def placeholder(name: str, value: _V) -> _V:
        ph[name] = (SINGLE_VARS[name], value)
        return value

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(MR_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(placeholder("MediaStorageSOPInstanceUID", "9.1.1.1.1.2"))  # = SOPInstanceUID
    meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.ImplementationVersionName = "XRS_BENCH_1"
    meta.SourceApplicationEntityTitle = "MRC35177"

    ds = Dataset()
    ds.file_meta = meta
    # SOP common + general study/series/equipment/image
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    ds.InstanceCreationDate = "20230412"
    ds.InstanceCreationTime = "102011.128000"
    ds.SOPClassUID = MR_STORAGE
    ds.SOPInstanceUID = placeholder("SOPInstanceUID", "9.1.1.1.1.2")
    ds.StudyDate = PATIENT["StudyDate"]
    ds.SeriesDate = "20230412"
    ds.AcquisitionDate = "20230412"
    ds.ContentDate = "20230412"
    ds.StudyTime = PATIENT["StudyTime"]
    ds.SeriesTime = "101802.531000"
    ds.AcquisitionTime = "101750.947500"
    ds.ContentTime = placeholder("ContentTime", "235959.987654")
    ds.AccessionNumber = placeholder("AccessionNumber", "PH-ACC-0000")
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = "Bench University Hospital"
    ds.InstitutionAddress = "1 Synthetic Road, Nowhere 00000"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StationName = "MRC35177"
    ds.StudyDescription = PATIENT["StudyDescription"]
    ds.SeriesDescription = placeholder("SeriesDescription", "PH-SERIES-DESCRIPTION")
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = "Jones^Mary"
    ds.OperatorsName = "Tech^Alex"
    ds.ManufacturerModelName = "TrioTim"
    ref = Dataset()
    ref.ReferencedSOPClassUID = MR_STORAGE
    ref.ReferencedSOPInstanceUID = placeholder("ReferencedSOPInstanceUID", "9.1.1.1.1.3")
    ds.ReferencedImageSequence = [ref]
    # patient
    ds.PatientName = PATIENT["PatientName"]
    ds.PatientID = PATIENT["PatientID"]
    ds.PatientBirthDate = PATIENT["PatientBirthDate"]
    ds.PatientSex = PATIENT["PatientSex"]
    ds.PatientAge = PATIENT["PatientAge"]
    ds.PatientSize = "1.68"
    ds.PatientWeight = "61.0"
    # MR acquisition
    ds.ScanningSequence = ["SE", "IR"]
    ds.SequenceVariant = ["SK", "SP", "MP"]
    ds.ScanOptions = "IR"
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = "*tir2d1_15"
    ds.AngioFlag = "N"
    ds.SliceThickness = "5"
    ds.RepetitionTime = "9000"
    ds.EchoTime = "93"
    ds.InversionTime = "2500"
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "123.252349"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "3"
    ds.SpacingBetweenSlices = "6.5"
    ds.NumberOfPhaseEncodingSteps = "192"
    ds.EchoTrainLength = "15"
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "75"
    ds.PixelBandwidth = "190"
    ds.DeviceSerialNumber = "35177"
    ds.SoftwareVersions = "syngo MR B17"
    ds.ProtocolName = "t2_tirm_tra_dark-fluid"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, 256, 192, 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle = "150"
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = "1.6047"
    ds.dBdt = "0"
    ds.PatientPosition = "HFS"
    # relationship / plane
    ds.StudyInstanceUID = placeholder("StudyInstanceUID", "9.1.1.1.1.4")
    ds.SeriesInstanceUID = placeholder("SeriesInstanceUID", "9.1.1.1.1.5")
    ds.StudyID = "1"
    ds.SeriesNumber = placeholder("SeriesNumber", "999901")
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = placeholder("InstanceNumber", "999902")
    ds.ImagePositionPatient = placeholder("ImagePositionPatient", "-999.5\\-999.5\\-999.5")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99.1"
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = placeholder("SliceLocation", "-999.25")
    # image pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 0  # placeholders set below
    ds.Columns = 0
    ds.PixelSpacing = [0.8984375, 0.8984375]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SmallestImagePixelValue = 0
    ds.LargestImagePixelValue = 4095
    ds.WindowCenter = "529"
    ds.WindowWidth = "1119"
    ds.WindowCenterWidthExplanation = "Algo1"
    # private tags (Siemens-like)
    blk19 = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    blk19.add_new(0x08, "CS", "IMAGE NUM 4")
    blk19.add_new(0x09, "LO", "1.0")
    blk19.add_new(0x0B, "DS", "40")
    blk19.add_new(0x0F, "SH", "Fast")
    blk19.add_new(0x12, "SL", [0, 0, 1050])
    blk19.add_new(0x13, "SL", [0, 0, 1050])
    blk29 = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    blk29.add_new(0x08, "CS", "IMAGE NUM 4")
    blk29.add_new(0x09, "LO", "20230412")
    csa = placeholder("CSAImageHeaderInfo", b"SV10\x04\x03\x02\x01PHCSA1234567")
    blk29.add_new(0x10, "OB", csa)
    blk29.add_new(0x18, "CS", "MR")
    blk29.add_new(0x19, "LO", "20230412")
    # Rows/Columns are US: the placeholders are their encoded 2-byte values, made unique below
    ph["Rows"] = (SINGLE_VARS["Rows"], struct.pack("<H", 0xFE01))
    ph["Columns"] = (SINGLE_VARS["Columns"], struct.pack("<H", 0xFE02))
    ds.Rows = 0xFE01
    ds.Columns = 0xFE02
    pixel = b"\xA5\x5A" * 8 + b"PHPIXELDATA!"
    ph["PixelData"] = (SINGLE_VARS["PixelData"], pixel)
    ds.PixelData = pixel
    ds["PixelData"].VR = "OW"
    set_undefined_length(ds["ReferencedImageSequence"])
    return cut_template(write_dataset_bytes(ds), ph)


MULTI_VARS = {
    k: SINGLE_VARS[k]
    for k in ("MediaStorageSOPInstanceUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
              "SeriesNumber", "InstanceNumber")
}


def build_multiframe_template(frames: int) -> Template:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID

    ph: dict[str, tuple[Var, bytes | str]] = {}

    def placeholder(name: str, value: str) -> str:
        ph[name] = (MULTI_VARS[name], value)
        return value

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ENHANCED_MR_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(placeholder("MediaStorageSOPInstanceUID", "9.2.1.1.1.2"))  # = SOPInstanceUID
    meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.ImplementationVersionName = "XRS_BENCH_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.InstanceCreationDate = "20230412"
    ds.InstanceCreationTime = "102011.128000"
    ds.SOPClassUID = ENHANCED_MR_STORAGE
    ds.SOPInstanceUID = placeholder("SOPInstanceUID", "9.2.1.1.1.2")
    ds.StudyDate = PATIENT["StudyDate"]
    ds.ContentDate = "20230412"
    ds.StudyTime = PATIENT["StudyTime"]
    ds.ContentTime = "102011.128000"
    ds.AcquisitionDateTime = "20230412101750.947500"
    ds.AccessionNumber = "ACC-MF"
    ds.Modality = "MR"
    ds.Manufacturer = "Philips"
    ds.InstitutionName = "Bench University Hospital"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StationName = "PHILIPS-MR1"
    ds.StudyDescription = PATIENT["StudyDescription"]
    ds.SeriesDescription = "fMRI bold 5000 dyn"
    ds.ManufacturerModelName = "Ingenia"
    ds.PatientName = PATIENT["PatientName"]
    ds.PatientID = PATIENT["PatientID"]
    ds.PatientBirthDate = PATIENT["PatientBirthDate"]
    ds.PatientSex = PATIENT["PatientSex"]
    ds.DeviceSerialNumber = "45021"
    ds.SoftwareVersions = ["5.6.1", "5.6.1.2"]
    ds.ProtocolName = "fMRI_bold"
    ds.StudyInstanceUID = placeholder("StudyInstanceUID", "9.2.1.1.1.4")
    ds.SeriesInstanceUID = placeholder("SeriesInstanceUID", "9.2.1.1.1.5")
    ds.StudyID = "1"
    ds.SeriesNumber = placeholder("SeriesNumber", "999901")
    ds.InstanceNumber = placeholder("InstanceNumber", "999902")
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99.2"
    ds.PositionReferenceIndicator = ""
    ds.ContentQualification = "PRODUCT"
    ds.ImageComments = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = str(frames)
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"

    dim_org = Dataset()
    dim_org.DimensionOrganizationUID = "1.2.826.0.1.3680043.8.498.99.3"
    ds.DimensionOrganizationSequence = [dim_org]
    dims = []
    for pointer, group in ((0x00209056, 0x00209111), (0x00209057, 0x00209111), (0x00200100, 0x00209111)):
        d = Dataset()
        d.DimensionOrganizationUID = "1.2.826.0.1.3680043.8.498.99.3"
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = group
        dims.append(d)
    ds.DimensionIndexSequence = dims

    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [3.0, 3.0]
    pm.SliceThickness = "3"
    pm.SpacingBetweenSlices = "3.3"
    shared.PixelMeasuresSequence = [pm]
    po = Dataset()
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [po]
    ft = Dataset()
    ft.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ft.PixelPresentation = "MONOCHROME"
    ft.VolumetricProperties = "VOLUME"
    ft.VolumeBasedCalculationTechnique = "NONE"
    ft.ComplexImageComponent = "MAGNITUDE"
    ft.AcquisitionContrast = "T2"
    shared.MRImageFrameTypeSequence = [ft]
    ds.SharedFunctionalGroupsSequence = [shared]

    per_frame = []
    slices = 40
    for f in range(frames):
        item = Dataset()
        fc = Dataset()
        fc.FrameAcquisitionNumber = f // slices + 1
        t = 10 * 3600 + 17 * 60 + 50 + 2 * (f // slices)  # one volume every 2 s from 10:17:50
        fc.FrameReferenceDateTime = (f"20230412{t // 3600:02d}{t // 60 % 60:02d}{t % 60:02d}"
                                     f".{50 * (f % slices):06d}")
        fc.FrameAcquisitionDateTime = fc.FrameReferenceDateTime
        fc.FrameAcquisitionDuration = 2000.0
        fc.StackID = "1"
        fc.InStackPositionNumber = f % slices + 1
        fc.TemporalPositionIndex = f // slices + 1
        fc.DimensionIndexValues = [1, f % slices + 1, f // slices + 1]
        item.FrameContentSequence = [fc]
        pp = Dataset()
        pp.ImagePositionPatient = ["-120.0", "-96.0", f"{-60.0 + 3.3 * (f % slices):.1f}"]
        item.PlanePositionSequence = [pp]
        voi = Dataset()
        voi.WindowCenter = "600"
        voi.WindowWidth = "1200"
        item.FrameVOILUTSequence = [voi]
        pvt = Dataset()
        pvt.RescaleIntercept = "0"
        pvt.RescaleSlope = "1.52"
        pvt.RescaleType = "US"
        item.PixelValueTransformationSequence = [pvt]
        echo = Dataset()
        echo.EffectiveEchoTime = 30.0
        item.MREchoSequence = [echo]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = bytes(2 * 2 * 2 * frames)
    ds["PixelData"].VR = "OW"
    for kw in ("DimensionOrganizationSequence", "DimensionIndexSequence", "SharedFunctionalGroupsSequence",
               "PerFrameFunctionalGroupsSequence"):
        set_undefined_length(ds[kw])
    return cut_template(write_dataset_bytes(ds), ph)
