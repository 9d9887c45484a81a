"""The keywords core.naming knows without pydicom's dictionary are the dictionary's (issue 17)."""

from __future__ import annotations

import pytest
from pydicom.datadict import tag_for_keyword

from container_app.core import naming
from container_app.core.errors import TemplateError


def test_every_known_keyword_is_in_pydicoms_dictionary() -> None:
    assert naming._KNOWN_KEYWORDS
    assert [k for k in sorted(naming._KNOWN_KEYWORDS) if tag_for_keyword(k) is None] == []


def test_the_default_template_needs_only_known_keywords() -> None:
    template = naming.parse_template(naming.DEFAULT_TEMPLATE)
    assert set(template.keywords) <= naming._KNOWN_KEYWORDS


@pytest.mark.parametrize("keyword", ["PatientSex", "AcquisitionNumber", "EchoNumbers"])
def test_a_keyword_not_known_is_looked_up_in_the_dictionary(keyword: str) -> None:
    assert keyword not in naming._KNOWN_KEYWORDS
    assert naming.is_dicom_keyword(keyword)
    assert naming.parse_template(f"${{{keyword}}}-${{SOPInstanceUID}}").keywords[0] == keyword


@pytest.mark.parametrize("keyword", ["NotAKeyword", "patientid", "PatientID2"])
def test_a_word_not_in_the_dictionary_is_refused(keyword: str) -> None:
    assert not naming.is_dicom_keyword(keyword)
    with pytest.raises(TemplateError, match="is not a DICOM keyword"):
        naming.parse_template(f"${{{keyword}}}")
