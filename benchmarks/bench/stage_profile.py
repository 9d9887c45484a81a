"""Where our survey's time goes, per stage (discover, read, classify, check, render, validate, write).

The survey logs only its total (``survey finished`` with ``seconds``), no per-stage timings, so the stages are
measured from outside: one ``--jobs 1`` run (everything in one process, so one profile sees it all) under
cProfile, self time (``tottime``) of every function grouped by the module it is defined in, and the modules
mapped to stages. cProfile inflates per-call costs, so the shares matter more than the seconds.
"""

from __future__ import annotations

import pstats
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

# module path fragment -> stage; the first match wins (more specific first)
STAGE_OF = (
    ("container_app/survey/discover", "discover"),
    ("container_app/survey/anchored_reads", "read"),
    ("container_app/survey/dicom/", "read"),
    ("container_app/survey/catalog", "read"),
    ("container_app/survey/deidentification", "check"),
    ("container_app/core/deidentification", "classify"),
    ("container_app/core/classify", "classify"),
    ("container_app/core/naming", "classify"),
    ("container_app/core/report_checks", "check"),
    ("container_app/core/", "classify"),
    ("container_app/reports/html", "render"),
    ("container_app/reports/table", "render"),
    ("container_app/reports/schemas", "validate"),
    ("jsonschema", "validate"),
    ("fastjsonschema", "validate"),
    ("container_app/reports/", "write"),
    ("container_app/survey/", "pipeline"),
    ("pydicom", "read"),
    ("json/", "write"),
    ("hashlib", "check"),
)


def stage_of(filename: str) -> str:
    for frag, stage in STAGE_OF:
        if frag in filename:
            return stage
    if filename.startswith("~") or filename == "<built-in>":
        return "builtins (system calls, C)"
    return "other"


def profile_survey(ours_cmd: list[str], env: dict[str, str], root: Path, scratch: Path) -> dict[str, object]:
    """Run the survey with ``--jobs 1`` under cProfile; seconds per stage and per module (top 15)."""
    prof = scratch / "survey.prof"
    out = scratch / "prof-out"
    py = ours_cmd[0] if ours_cmd[0].endswith("python") else str(Path(ours_cmd[0]).parent / "python")
    cmd = [py, "-m", "cProfile", "-o", str(prof), "-m", "container_app", "survey", str(root), "--output",
           str(out), "--all-resources", "--log-format", "json", "--jobs", "1"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1) or not prof.is_file():
        return {"error": f"exit {r.returncode}: {r.stderr[-400:]}"}
    st = pstats.Stats(str(prof))
    by_stage: dict[str, float] = defaultdict(float)
    by_module: dict[str, float] = defaultdict(float)
    builtin_by_caller_stage: dict[str, float] = defaultdict(float)
    for (filename, _line, func), (_cc, _nc, tt, _ct, callers) in st.stats.items():  # type: ignore[attr-defined]
        stage = stage_of(filename)
        mod = filename.split("container_app/")[-1] if "container_app/" in filename else (
            f"{filename}:{func}" if filename.startswith("~") else Path(filename).name)
        by_module[mod] += tt
        if stage.startswith("builtins"):
            # attribute a C function's time to the stages of its callers, in proportion to their calls
            total_calls = sum(c[1] for c in callers.values()) or 1
            for (cfile, _, _), c in callers.items():
                builtin_by_caller_stage[stage_of(cfile)] += tt * c[1] / total_calls
        else:
            by_stage[stage] += tt
    for stage, t in builtin_by_caller_stage.items():
        by_stage[stage] += t
    total = sum(by_stage.values())
    return {
        "wall_s": round(wall, 2),
        "profiled_s": round(total, 2),
        "stages_s": {k: round(v, 2) for k, v in sorted(by_stage.items(), key=lambda kv: -kv[1])},
        "top_modules_s": {k: round(v, 2) for k, v in sorted(by_module.items(), key=lambda kv: -kv[1])[:15]},
        "python": sys.version.split()[0],
    }
