"""The XNAT stand-in server: test infrastructure that plays the parts of XNAT's REST API the project uses.

It is a stand-in, never XNAT. Start one with `run_standin(archive_root)`; see API.md beside this file.
"""

from tests.xnat_standin.faults import Faults
from tests.xnat_standin.framing import LoggedRequest, result_set
from tests.xnat_standin.server import StandIn, run_standin

__all__ = ["Faults", "LoggedRequest", "StandIn", "result_set", "run_standin"]
