"""Reading DICOM headers: the entry points the survey pipeline calls. The only place DICOM is parsed.

The fast path (`fast_path`) reads just the bytes up to the last tag the survey needs; anything it
does not recognise goes to pydicom (`fallback`), which reads the same elements. Both hand back the
raw bytes of each element to one decoder (`decode`), which turns them into the strings XNAT's
DICOM library would return.
"""

from __future__ import annotations

import os
import stat

from container_app.core.errors import FileProblem
from container_app.core.records import ContentCheck, FileRecord, HeaderValues
from container_app.core.vocabulary import Reason
from container_app.support.fsutil import sha256_of_fd
from container_app.survey import anchored_reads
from container_app.survey.dicom import fallback
from container_app.survey.dicom.fast_path import (
    GZIP_MAGIC,
    PIXEL_DATA_TAGS,
    DamagedDeflateStream,
    ElementParser,
    FastPathUnsupported,
    Window,
    read_fast,
    read_layout,
)
from container_app.survey.dicom.inflate import MAX_INFLATED_HEADER_BYTES, MIB, HeaderTooLarge
from container_app.survey.dicom.read_plan import MEDIA_STORAGE_DIRECTORY, ParsedHeader, ReadPlan, TruncatedFile


def read_header(path: str, plan: ReadPlan, *, fast: bool = True) -> ParsedHeader:
    """Parse the wanted elements of one DICOM file (opened through `anchored_reads`: no link is followed).

    Raises OSError (also for a link, FIFO or device, or a folder on the way swapped for a link),
    TruncatedFile, HeaderTooLarge (a deflated header past the inflation cap: not handed to pydicom,
    which would only meet the same cap) or InvalidDicomError.
    """
    fd = anchored_reads.open_path(path)
    try:
        return _read_header_fd(fd, path, plan, fast=fast)
    finally:
        os.close(fd)


def _read_header_fd(fd: int, path: str, plan: ReadPlan, *, fast: bool = True) -> ParsedHeader:
    size = os.fstat(fd).st_size
    if fast:
        try:
            return read_fast(Window(fd, size), plan)
        except FastPathUnsupported:
            pass
    # Looked up on the module at each call, so tests can see which files fall back. It opens the file
    # again, as anchored as this read (relative to the held resource folder).
    return fallback.read_with_pydicom(path, plan)


def survey_file(directory: str, name: str, plan: ReadPlan) -> FileRecord:
    """Everything the survey needs about one directory entry, never following a link.

    `directory` is the resource's folder: opened once per process (walked from ROOT without following
    links, `anchored_reads`) and `name` (`x.dcm` or `sub/x.dcm`) read relative to it.
    """
    try:
        st = anchored_reads.lstat_in(directory, name)
    except OSError as exc:
        return FileRecord(name, 0, 0, (0, 0), 0, None, (Reason.UNREADABLE,), exc.strerror)
    except FileProblem as exc:  # a folder on the way is a link now: never followed
        return FileRecord(name, 0, 0, (0, 0), 0, None, (Reason.UNREADABLE,), str(exc))

    def record(header: HeaderValues | None, reasons: tuple[Reason, ...], detail: str | None = None,
               needs_force: bool = False) -> FileRecord:
        return FileRecord(name, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino), st.st_nlink, header, reasons,
                          detail, needs_force, st.st_ctime_ns)

    if stat.S_ISLNK(st.st_mode):
        return record(None, (Reason.SYMLINK,), detail="symbolic link, not followed")
    if not stat.S_ISREG(st.st_mode):
        return record(None, (Reason.NOT_A_REGULAR_FILE,), detail="not a regular file")
    try:
        fd = anchored_reads.open_in(directory, name, before=st)
    except OSError as exc:
        return record(None, (Reason.UNREADABLE,), detail=exc.strerror)
    except FileProblem as exc:  # replaced by a link, FIFO or device since the lstat: refused, never waited on
        return record(None, (Reason.UNREADABLE,), detail=str(exc))
    try:
        parsed = _read_header_fd(fd, os.path.join(directory, name), plan)
    except TruncatedFile:
        return record(None, (Reason.TRUNCATED,), detail="the file ends inside its header")
    except HeaderTooLarge as exc:  # closest Reason until one names the limit; the detail does
        return record(None, (Reason.UNREADABLE,), detail=str(exc))
    except OSError as exc:
        return record(None, (Reason.UNREADABLE,), detail=exc.strerror)
    except Exception as exc:  # pydicom raises many types on garbage; all mean "not DICOM" here
        reason = Reason.GZIP_COMPRESSED if _starts_with(fd, GZIP_MAGIC) else Reason.NOT_DICOM
        detail = "gzip-compressed file" if reason is Reason.GZIP_COMPRESSED else _short(exc)
        return record(None, (reason,), detail=detail)
    finally:
        os.close(fd)
    reasons: list[Reason] = []
    values = parsed.values
    if values.get("SOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        return record(HeaderValues(values), (Reason.DICOMDIR,), detail="a DICOMDIR, not an instance")
    if "SOPClassUID" not in values:
        reasons.append(Reason.MISSING_SOP_CLASS_UID)
    elif "SOPInstanceUID" not in values:
        reasons.append(Reason.MISSING_SOP_INSTANCE_UID)
    if parsed.needs_force:
        reasons.append(Reason.NEEDS_FORCE)
    instance_uid = values.get("SOPInstanceUID")
    if parsed.meta_instance_uid and instance_uid and parsed.meta_instance_uid != instance_uid:
        reasons.append(Reason.MEDIA_STORAGE_UID_MISMATCH)
    if st.st_nlink > 1:
        reasons.append(Reason.HARD_LINK)
    return record(HeaderValues(values), tuple(reasons), needs_force=parsed.needs_force)


def check_content(path: str, *, digest: bool = True) -> ContentCheck:
    """Whether the file's elements (pixel data included) are all there; with `digest`, its sha256 too.

    For the files a mitigation would touch or compare. Whether they fit is told from the elements'
    declared lengths, reading their headers only (a value is skipped, not read). `digest` reads every
    byte: only for the copies of one instance, whose bytes are compared. A deflated dataset is inflated
    no further than the header read may (`inflate`): past that its elements are not judged, and the
    detail says so.
    """
    with os.fdopen(anchored_reads.open_path(path), "rb", buffering=0) as handle:
        fd = handle.fileno()
        # A reused buffer: a fresh MiB per file costs an mmap and its page faults.
        sha256 = sha256_of_fd(fd) if digest else None
        size = os.fstat(fd).st_size
        intact, detail = True, None
        try:
            window = Window(fd, size)
            layout = read_layout(window)
            end, last_tag = ElementParser(window, layout.little, layout.implicit).last_element_end(
                layout.dataset_start)
            if end > window.size or not window.complete:
                intact = False
                detail = "pixel data cut short" if last_tag in PIXEL_DATA_TAGS else "the last element is cut short"
        except TruncatedFile:
            intact, detail = False, "the file ends inside an element"
        except DamagedDeflateStream:
            intact, detail = False, "the deflate stream is damaged"
        except FastPathUnsupported:
            pass  # not judged: the header read already classified the file
        except HeaderTooLarge:
            detail = f"not checked past the first {MAX_INFLATED_HEADER_BYTES // MIB} MiB of the inflated dataset"
    return ContentCheck(sha256, intact, detail)


def _starts_with(fd: int, magic: bytes) -> bool:
    try:
        return os.pread(fd, len(magic), 0) == magic
    except OSError:
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
