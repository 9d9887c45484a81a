"""survey.dicom: the only DICOM parser, split by job as pydicom splits its lean reader from its full one.

Each module imports only those listed after it: reader (the entry points read_header, survey_file,
check_content); fast_path (window, element walk, layout) and fallback (pydicom); decode (values,
character sets); read_plan (what to read, what reading gives), inflate (deflated datasets, inflated
within one cap by every reader) and native (the optional C module `_walk` and the switch that
turns it off).
"""
