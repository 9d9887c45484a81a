"""The benchmark harness behind ``benchmarks/survey_bench.py``, one module per job.

Imports run one way only, from the bottom of this list to the top, so that no two modules import each other:

- ``cli``: the command line and the order of a run (generate, measure, print)
- ``output``: the Markdown tables and the JSON document
- ``machine``: the machine, tool versions and which element walker our survey uses
- ``survey_runs``, ``mitigation_runs``: timing the tools on a corpus, and ``mitigate`` against ``cp``
- ``measurements``: the record of one tool on one corpus
- ``tools``: the commands under test (ours and the peers), installing the peers
- ``report_totals``: checking our survey's report against the corpus
- ``timed_run``: running one command (wall time, CPU, peak RSS, the machine's other load)
- ``process_tree``: the processes of a command's tree and their memory
- ``corpus``: generating the corpora in parallel, and reusing them from the cache
- ``corpus_params``: a corpus's parameters, its cache key and folder name
- ``mr_templates``: the two MR template files, built once with pydicom
- ``xnat_names``: XNAT's default and legacy file names
- ``dicom_bytes``: DICOM constants, deterministic UIDs, and templates cut into bytes
- ``locations``, ``progress``: the checkout being measured, and progress lines on stderr

The package is imported as ``bench`` because the script puts its own folder first on ``sys.path``; it is not
installed and nothing outside ``benchmarks/`` imports it.
"""
