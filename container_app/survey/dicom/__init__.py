"""survey.dicom."""
