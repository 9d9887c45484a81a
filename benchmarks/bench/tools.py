"""The commands under test: our survey (and how to run it from the venv), the peer DICOM readers, the floors,
and installing the peers when they are missing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.corpus import Corpus
from bench.locations import REPO
from bench.progress import log

# The tags every peer is asked for: SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesNumber,
# InstanceNumber (everything XNAT's default name template needs).
PEER_TAGS = ("0008,0016", "0008,0018", "0020,000d", "0020,0011", "0020,0013")

# Set to 1 in our survey's environment to turn its C element walker off (container_app.survey.dicom.native)
PURE_PYTHON_ENV = "XNAT_RESOURCE_SURVEY_PURE_PYTHON"

# The Python floor: the least a Python reader of the first 8 KB of every file has to do (walk, open, read,
# close), in one process and without parsing anything
FLOOR_PY = r"""
import os, sys
def walk(d):
    with os.scandir(d) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                yield from walk(e.path)
            elif e.is_file(follow_symlinks=False):
                yield e.path
n = 0
for p in walk(sys.argv[1]):
    fd = os.open(p, os.O_RDONLY)
    os.read(fd, 8192)
    os.close(fd)
    n += 1
print(n)
"""


@dataclass(frozen=True)
class Tool:
    name: str
    label: str
    cmd_for: Callable[[Path, Path], list[str]]  # (corpus root, output dir) -> command line
    available: bool = True
    why_missing: str = ""
    shell: bool = False
    validate: Callable[[str, Corpus], str | None] | None = None  # (stdout text, corpus) -> problem, if any
    is_ours: bool = False
    env: dict[str, str] | None = None  # None: our environment for ours, the harness's for peers


def _validate_gdcm(text: str, corpus: Corpus) -> str | None:
    readable = text.count("(could be read)")
    uids = text.count("(0008,0018) -> [")
    want = corpus.files
    problems = []
    if readable < want:
        problems.append(f"only {readable}/{want} files reported 'could be read'")
    if uids < want:
        problems.append(f"only {uids}/{want} files listed a SOPInstanceUID")
    return "; ".join(problems) or None


def _validate_dcmdump(text: str, corpus: Corpus) -> str | None:
    uids = text.count("(0008,0018) UI [")
    classes = text.count("(0008,0016) UI [")
    # the enhanced files' per-frame items contain none of the searched tags, so exactly one each
    if uids < corpus.files or classes < corpus.files:
        return f"SOPInstanceUID printed for {uids}, SOPClassUID for {classes} of {corpus.files} files"
    return None


def _validate_count(text: str, corpus: Corpus) -> str | None:
    try:
        n = int(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"unexpected output {text[-200:]!r}"
    return None if n >= corpus.files else f"read {n} files, expected at least {corpus.files}"


def _which(name: str) -> str | None:
    return shutil.which(name)


def install_peers(packages: Sequence[str]) -> None:
    log(f"installing {' '.join(packages)} with apt-get ...")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run([*sudo, "apt-get", "update"], env=env, capture_output=True, text=True)
        r = subprocess.run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages], env=env,
                           capture_output=True, text=True)
    if r.returncode != 0:
        log(f"apt-get failed (rc={r.returncode}): {r.stderr.strip()[-500:]}")


def ours_command(venv: Path) -> tuple[list[str] | None, dict[str, str], str]:
    """How to run our CLI, its environment, and a reason when it cannot run."""
    py = venv / "bin" / "python"
    if not py.exists():
        return None, {}, f"no Python in venv {venv}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.pop("PYTHONHASHSEED", None)
    probe = subprocess.run([str(py), "-c", "import container_app.cli.main"], env=env, capture_output=True,
                           text=True, cwd=REPO)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None, env, f"container_app.cli.main is not importable with {py} ({last})"
    script = venv / "bin" / "xnat-resource-survey"
    if script.exists():
        return [str(script)], env, ""
    return [str(py), "-m", "container_app"], env, ""


def build_tools(args: argparse.Namespace) -> tuple[list[Tool], dict[str, str]]:
    wanted = set(args.peers.split(",")) if args.peers else None
    want_install = args.install or (os.environ.get("CI", "").lower() == "true")
    missing_pkgs = []
    if not _which("gdcmscanner"):
        missing_pkgs.append("libgdcm-tools")
    if not _which("dcmdump"):
        missing_pkgs.append("dcmtk")
    if missing_pkgs and want_install:
        install_peers(missing_pkgs)

    ours_cmd, ours_env, why = ours_command(Path(args.venv))
    extra = shlex.split(args.ours_args) if args.ours_args else []
    tools: list[Tool] = []
    if not args.skip_ours:
        tools.append(Tool(
            "ours", "xnat-resource-survey survey",
            lambda root, out: [*(ours_cmd or []), "survey", str(root), "--output", str(out), "--all-resources",
                               "--log-format", "json", *extra],
            available=ours_cmd is not None, why_missing=why, is_ours=True))
        if args.python_walker:
            tools.append(replace(tools[0], name="ours-python", label="ours (pure-Python walker)",
                                 env={**ours_env, PURE_PYTHON_ENV: "1"}))
    tags_g = [x for t in PEER_TAGS for x in ("-t", t)]
    tags_d = [x for t in PEER_TAGS for x in ("+P", t)]
    gdcm_ok = _which("gdcmscanner") is not None
    dcmdump_ok = _which("dcmdump") is not None
    tools += [
        Tool("gdcmscanner", "gdcmscanner -r -p (5 tags)",
             lambda root, out: ["gdcmscanner", "-d", str(root), "-r", "-p", *tags_g],
             gdcm_ok, "gdcmscanner not found: apt-get install -y libgdcm-tools (or run with --install)",
             validate=_validate_gdcm),
        Tool("dcmdump", "dcmdump +sd +r -M +P (5 tags)",
             lambda root, out: ["dcmdump", "-q", "-Un", "-M", "+sd", "+r", *tags_d, str(root)],
             dcmdump_ok, "dcmdump not found: apt-get install -y dcmtk (or run with --install)",
             validate=_validate_dcmdump),
        Tool("dcmdump-stop", "dcmdump ... +st 0020,0013 (stop after InstanceNumber)",
             lambda root, out: ["dcmdump", "-q", "-Un", "-M", "+sd", "+r", "+st", "0020,0013", *tags_d, str(root)],
             dcmdump_ok, "dcmdump not found: apt-get install -y dcmtk (or run with --install)",
             validate=_validate_dcmdump),
        Tool("floor-py", "floor: os.open/os.read 8 KB per file (Python, 1 process)",
             lambda root, out: [sys.executable, "-c", FLOOR_PY, str(root)], validate=_validate_count),
        Tool("floor-head", "floor: find | xargs head -c 8192 (C, 1 process)",
             lambda root, out: ["sh", "-c",
                                'find "$1" -type f -print0 | xargs -0 head -q -c 8192 > /dev/null', "sh",
                                str(root)]),
        Tool("floor-head-par", f"floor: find | xargs -P {os.cpu_count()} head -c 8192 (C, all cores)",
             lambda root, out: ["sh", "-c",
                                f'find "$1" -type f -print0 | xargs -0 -n 2000 -P {os.cpu_count()} '
                                'head -q -c 8192 > /dev/null', "sh", str(root)]),
    ]
    if wanted is not None:
        tools = [t for t in tools if t.name in wanted or t.is_ours]
    for t in tools:
        if not t.available:
            log(f"SKIP {t.name}: {t.why_missing}")
    return tools, ours_env
