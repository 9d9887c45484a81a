"""Moved: `survey_archive` is in cli.commands.survey, `run_demo` in cli.commands.demo.

Kept only while tests/conftest.py and tests/survey/test_names_and_logs.py still import from here; delete it
once they import from the command modules.
"""

from container_app.cli.commands.demo import DEMO_MARKER, run_demo
from container_app.cli.commands.survey import SurveyOutcome, survey_archive

__all__ = ["DEMO_MARKER", "SurveyOutcome", "run_demo", "survey_archive"]
