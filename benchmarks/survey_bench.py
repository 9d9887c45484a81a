#!/usr/bin/env python3
"""Benchmark harness for ``xnat-resource-survey survey`` against peer DICOM header readers.

What it does, in one run and on the same corpora (see benchmarks/README.md):

1. Generates deterministic corpora into a cache directory (reused when present, keyed by parameters):
   - N small single-frame MR files per size in ``--sizes``, in an XNAT session (or project) mount layout,
     ~200 files per scan, 95% under XNAT's default name, 5% mismatched names, 2% duplicate copies;
   - a set of enhanced multi-frame MR files with thousands of per-frame functional group items in
     undefined-length sequences.
   One template file per corpus is built with pydicom; every other file is rendered by splicing
   per-file values into the template's bytes (no pydicom per file), with one worker per core.
2. Times, warm cache (one untimed warm-up run, then best of ``--repeat``):
   our survey on an empty folder (its start-up cost), then on every corpus our survey, gdcmscanner,
   dcmdump, and the "read 8 KB of every file" floor (Python and C); with ``--python-walker`` also our
   survey with the pure-Python element walker.
3. Prints a Markdown table (files/s, ms/file and ours' ms/file after start-up, ours/peer time ratios,
   peak RSS, CPU) and the machine (including which element walker our survey uses); ``--json``.
4. Optionally (``--mitigation``) times our ``mitigate`` on a copy of the corpus against ``cp`` of the
   affected files, and against that ``cp`` followed by ``sync -f``.

Run ``.venv/bin/python benchmarks/survey_bench.py --help``.
"""

# The harness itself is the ``bench`` package beside this file (benchmarks/bench/, one module per job, listed in
# its __init__); Python puts this file's folder first on sys.path, so it imports from any working directory.

from __future__ import annotations

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n\n")[0]))
