"""The command line, and the order of a run: corpora first (``--generate-only`` stops there), then the tools
on every corpus, then the tables on stdout and the files asked for."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.corpus import Corpus, ensure_multi, ensure_single
from bench.corpus_params import MultiParams, SingleParams
from bench.legacy_main import add_legacy_options, legacy_main
from bench.locations import REPO
from bench.machine import machine_info, ours_walker
from bench.measurements import Measurement
from bench.mitigation_runs import bench_mitigation
from bench.output import json_document, markdown
from bench.progress import log
from bench.survey_runs import add_after_startup, bench_startup, bench_tool
from bench.tools import PURE_PYTHON_ENV, build_tools, ours_command
from bench.xnat_names import self_check_naming

DEFAULT_WORKDIR = Path("/var/tmp/xrs-bench")


def parse_sizes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1
        if part[-1] in "km":
            mult = 1000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        out.append(int(float(part) * mult))
    return out


def build_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="corpus cache and scratch directory")
    ap.add_argument("--sizes", default="10000,100000", help="single-frame corpus sizes (files), e.g. 1k,10k")
    ap.add_argument("--multiframe", type=int, default=200, help="number of enhanced multi-frame files (0: none)")
    ap.add_argument("--frames", type=int, default=5000, help="per-frame functional group items per file")
    ap.add_argument("--files-per-scan", type=int, default=200)
    ap.add_argument("--layout", choices=("session", "project"), default="session",
                    help="session: ROOT/SCANS/<scan>/DICOM; project: ROOT/BENCH/arc001/SESSnnnn/SCANS/...")
    ap.add_argument("--no-catalogs", action="store_true", help="do not write scan_<id>_catalog.xml files")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool (best is reported)")
    ap.add_argument("--peer-budget", type=float, default=60.0,
                    help="stop timing a peer (not ours) once its runs, warm-up included, took this many "
                         "seconds (at least one timed run; 0: no limit)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="generator processes")
    ap.add_argument("--venv", default=str(REPO / ".venv"), help="virtualenv holding our package")
    ap.add_argument("--ours-args", default="", help="extra arguments for our survey, e.g. '--jobs 4'")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--python-walker", action="store_true",
                    help=f"also time our survey on every corpus with its pure-Python element walker "
                         f"({PURE_PYTHON_ENV}=1)")
    ap.add_argument("--peers", default="",
                    help="comma list of peers to run (gdcmscanner,dcmdump,dcmdump-stop,floor-py,floor-head,"
                         "floor-head-par); default all")
    ap.add_argument("--install", action="store_true",
                    help="apt-get install missing peers (also done when CI=true)")
    ap.add_argument("--mitigation", action="store_true",
                    help="also time our mitigate on a copy of each single-frame corpus vs cp of the affected "
                         "files, and vs that cp followed by sync")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each run, wait up to S seconds for the CPUs to be less than 10%% busy "
                         "(for shared machines)")
    ap.add_argument("--generate-only", action="store_true", help="build the corpora and stop")
    ap.add_argument("--json", type=Path, help="write all figures to this JSON file")
    ap.add_argument("--markdown", type=Path, help="also write the Markdown tables to this file")
    add_legacy_options(ap)
    return ap


def main(argv: Sequence[str] | None = None, *, description: str) -> int:
    """Run the benchmark; ``description`` heads ``--help`` (the entry script's docstring says what it does)."""
    args = build_parser(description).parse_args(argv)
    self_check_naming()
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if args.corpus == "legacy":
        return legacy_main(args)
    corpora: list[tuple[str, Corpus]] = []
    for n in parse_sizes(args.sizes):
        p = SingleParams(files=n, files_per_scan=args.files_per_scan, layout=args.layout,
                         catalogs=not args.no_catalogs, seed=args.seed)
        corpora.append((f"single-frame {n:,}", ensure_single(workdir, p, args.jobs)))
    if args.multiframe > 0:
        mp = MultiParams(files=args.multiframe, frames=args.frames, catalogs=not args.no_catalogs, seed=args.seed)
        corpora.append((f"multi-frame {args.multiframe}x{args.frames}", ensure_multi(workdir, mp, args.jobs)))
    if args.generate_only:
        for name, c in corpora:
            print(f"{name}: {c.root}  ({c.files} files, generation {c.manifest['generation_s']} s)")
        return 0

    tools, ours_env = build_tools(args)
    ours_cmd, _, _ = ours_command(Path(args.venv))
    machine = machine_info(workdir, Path(args.venv), ours_env)
    log(f"our element walker: {machine['ours_walker']}")
    if args.python_walker and not args.skip_ours:
        walker = ours_walker(Path(args.venv), {**ours_env, PURE_PYTHON_ENV: "1"})
        machine["ours_python_walker"] = walker
        if walker != "Python":
            log(f"WARNING: with {PURE_PYTHON_ENV}=1 our survey reports walker {walker!r}, not 'Python'")
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=workdir))
    measurements: list[Measurement] = []
    try:
        ours_tool = next((t for t in tools if t.name == "ours"), None)
        if ours_tool is not None:
            measurements.append(bench_startup(ours_tool, args, ours_env, scratch))
        for name, corpus in corpora:
            for tool in tools:
                measurements.append(bench_tool(tool, corpus, name, args, ours_env, scratch))
            if args.mitigation and corpus.kind == "single":
                measurements += bench_mitigation(corpus, name, args, ours_cmd if not args.skip_ours else None,
                                                 ours_env, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    measurements = add_after_startup(measurements)

    md = markdown(machine, corpora, measurements, args.repeat)
    print(md)
    if args.markdown:
        args.markdown.write_text(md + "\n")
    if args.json:
        doc = json_document(machine, corpora, measurements, args.repeat)
        args.json.write_text(json.dumps(doc, indent=2))
        log(f"wrote {args.json}")
    return 0
