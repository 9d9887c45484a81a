"""The default run (``--corpus legacy``, issue 17): the legacy corpus with small and with realistic file sizes,
a project-layout corpus, warm and cold survey rows, mitigation and restore, the per-stage profile; and the
``--million`` option (5,000 sessions of 200 files, every tenth session legacy-named)."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.legacy_corpus import LegacyParams, ensure_legacy
from bench.legacy_runs import mitigation_rows, ratio_rows, survey_commands, survey_rows
from bench.machine import machine_info
from bench.measurements import Measurement, fmt
from bench.progress import log
from bench.stage_profile import profile_survey
from bench.tools import ours_command


def add_legacy_options(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("legacy corpus (the default, --corpus legacy)")
    g.add_argument("--corpus", choices=("legacy", "classic"), default="legacy",
                   help="legacy: every file misnamed, big resources (issue 17); classic: the --sizes corpora")
    g.add_argument("--legacy-resources", type=int, default=3)
    g.add_argument("--legacy-instances", type=int, default=33_000,
                   help="instances per resource (10%% get a second copy: ~36,300 files per resource)")
    g.add_argument("--legacy-variants", default="small,real,project",
                   help="small: small pixel data; real: MR slices of 128-512 KB; project: the small variant in "
                        "project layout (one resource per session)")
    g.add_argument("--no-cold", action="store_true", help="skip the cold-cache rows")
    g.add_argument("--no-mitigation-rows", action="store_true", help="skip mitigate/restore rows")
    g.add_argument("--no-profile", action="store_true", help="skip the per-stage cProfile run")
    g.add_argument("--million", action="store_true",
                   help="only the million-file project run: 5,000 sessions of 200 files, every tenth session "
                        "legacy-named; time and peak RSS of survey, mitigate and restore")


def _variants(args: argparse.Namespace) -> list[tuple[str, LegacyParams]]:
    if args.million:
        return [("million (5,000 sessions x 200)", LegacyParams(resources=5000, instances_per_resource=200,
                                                                layout="project", legacy_every=10,
                                                                seed=args.seed))]
    base = LegacyParams(resources=args.legacy_resources, instances_per_resource=args.legacy_instances,
                        seed=args.seed)
    out = []
    for v in (x.strip() for x in args.legacy_variants.split(",") if x.strip()):
        if v == "small":
            out.append((f"legacy {args.legacy_resources}x{args.legacy_instances}", base))
        elif v == "real":
            out.append((f"legacy {args.legacy_resources}x{args.legacy_instances}, 128-512 KB files",
                        LegacyParams(**{**base.__dict__, "realistic_sizes": True})))
        elif v == "project":
            out.append((f"legacy {args.legacy_resources}x{args.legacy_instances}, project layout",
                        LegacyParams(**{**base.__dict__, "layout": "project"})))
        else:
            raise SystemExit(f"--legacy-variants: unknown variant {v!r} (small, real, project)")
    return out


def markdown(machine: dict[str, Any], corpora: list[tuple[str, Any]], ms: list[Measurement],
             profiles: dict[str, Any]) -> str:
    lines = ["## Machine", "", "```", json.dumps(machine, indent=1), "```", "", "## Corpora", "",
             "| corpus | files | MiB | legacy names | IMnnnn | default | copies (differing) | generation |",
             "|---|---|---|---|---|---|---|---|"]
    for name, c in corpora:
        m = c.manifest
        lines.append(f"| {name} | {m['dicom_files']:,} | {m['bytes'] / 2**20:,.0f} | {m['legacy_named']:,} | "
                     f"{m['im_named']:,} | {m['default_named']:,} | {m['copies']:,} ({m['differing_copies']:,}) | "
                     f"{m['generation_s']} s |")
    lines += ["", "## Rows", "", "| corpus | row | files | best s | runs s | files/s | CPU s | peak RSS MiB | note |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in ms:
        lines.append(f"| {m.corpus} | {m.tool} | {m.files:,} | {fmt(m.best_s, '.2f')} | "
                     f"{', '.join(f'{x:.2f}' for x in m.runs_s)} | {fmt(m.files_per_s, ',.0f')} | "
                     f"{fmt(m.cpu_s, '.1f')} | {fmt(m.maxrss_mib, '.0f')} | {m.note or ''} |")
    lines += ["", "## Ratios", "", "| corpus | comparison | ratio |", "|---|---|---|"]
    lines += [f"| {c} | {what} | {r:.2f} |" for c, what, r in ratio_rows(ms)]
    for name, prof in profiles.items():
        lines += ["", f"## Per-stage self time, `--jobs 1` under cProfile: {name}", "", "```",
                  json.dumps(prof, indent=1), "```"]
    return "\n".join(lines)


def legacy_main(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir
    corpora = [(name, ensure_legacy(workdir, p, args.jobs)) for name, p in _variants(args)]
    if args.generate_only:
        for name, c in corpora:
            print(f"{name}: {c.root} ({c.files} files)")
        return 0
    ours_cmd, env, why = ours_command(Path(args.venv))
    if ours_cmd is None or args.skip_ours:
        log(f"our survey is not run: {why or '--skip-ours'}")
        ours_cmd = None
    gdcm = shutil.which("gdcmscanner")
    gdcm_tags = [x for t in ("0008,0016", "0008,0018", "0020,000d", "0020,0011", "0020,0013") for x in ("-t", t)]
    machine = machine_info(workdir, Path(args.venv), env)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=workdir))
    ms: list[Measurement] = []
    profiles: dict[str, Any] = {}
    try:
        for name, c in corpora:
            gcmd = ["gdcmscanner", "-d", str(c.root), "-r", "-p", *gdcm_tags] if gdcm else None
            out = scratch / "survey-out"
            if args.million:
                ms += survey_rows(c, name, survey_commands(ours_cmd, None, c.root, out, ()), env, 1,
                                  args.wait_quiet, cold=True)
                ms += mitigation_rows(c, name, ours_cmd, env, scratch, args.wait_quiet, in_place=True)
                continue
            ms += survey_rows(c, name, survey_commands(ours_cmd, gcmd, c.root, out, (2, 32)), env, args.repeat,
                              args.wait_quiet, cold=False)
            if not args.no_cold:
                ms += survey_rows(c, name, survey_commands(ours_cmd, gcmd, c.root, out, (2, 32)), env, 1,
                                  args.wait_quiet, cold=True)
            if not args.no_mitigation_rows:
                ms += mitigation_rows(c, name, ours_cmd, env, scratch, args.wait_quiet)
            if ours_cmd is not None and not args.no_profile and "project" not in name:
                log(f"profiling our survey (--jobs 1, cProfile) on {name} ...")
                profiles[name] = profile_survey(ours_cmd, env, c.root, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    md = markdown(machine, corpora, ms, profiles)
    print(md)
    if args.markdown:
        args.markdown.write_text(md + "\n")
    if args.json:
        from dataclasses import asdict
        args.json.write_text(json.dumps({"machine": machine, "corpora": [{"name": n, **c.manifest}
                                                                           for n, c in corpora],
                                         "measurements": [asdict(m) for m in ms], "profiles": profiles,
                                         "ratios": ratio_rows(ms)}, indent=2))
    return 0
