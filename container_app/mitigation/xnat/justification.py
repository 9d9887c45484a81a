"""Why a change is made: the justification XNAT may require on every call that changes something."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["JUSTIFICATION_WORDS", "Justification"]


@dataclass(frozen=True, slots=True)
class Justification:
    """Why a change is made, sent on every call that changes something.

    Sites and projects can require it (site preferences `requireChangeJustification` with
    `showChangeJustification`, and `requireEventName`): XDAT's `PersistentWorkflowUtils.buildOpenWorkflow`
    then throws JustificationAbsent ("Justification required.") or ActionNameAbsent ("Event name required.")
    when `event_reason` or `event_action` is blank. XNAT's `SecureResource.newEventInstance` reads the three
    query parameters below; XNAT's own survey API reads `reason` and `comment` instead (archive.py sends those).
    """

    reason: str
    action: str
    comment: str

    def query(self) -> dict[str, str]:
        return {"event_reason": self.reason, "event_action": self.action, "event_comment": self.comment}

    @classmethod
    def for_run(cls, run_id: str, what: str = "mitigation") -> Justification:
        return cls(reason=f"xnat-resource-survey {what}: misnamed and duplicated DICOM files",
                   action=f"xnat-resource-survey {what}", comment=f"xnat-resource-survey {what}, run {run_id}")


#: What XNAT says when a required justification or event name is missing (XDAT's PersistentWorkflowUtils
#: exceptions, and DefaultCatalogService / ResourceSurveyServiceImpl, which rephrase them).
JUSTIFICATION_WORDS = re.compile(r"justification|event name required|must provide an action", re.IGNORECASE)
