"""Files in and out, guarded: the one place every reader, writer and command goes through.

Inputs are opened only when they are regular files (a FIFO would wait forever, /dev/zero never
ends), read only as far as their headers promise, and decompressed with a limit, so a small
crafted file cannot take the memory of a large one. Outputs are checked before any work (not an
input, not a folder, their folder there and writable) and written through a temporary file and a
rename, alone or staged together, so an error or a stop never leaves half of them.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import secrets
import signal
import stat
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .errors import InputFileError, UserError

# Decompressed bytes per stored byte above which a file is refused as a decompression bomb: splat
# and feature data compress 1.1-3x; only crafted (or constant) data reaches gzip's 1000x.
MAX_INFLATION = 100
NPY_HEADER_LIMIT = 1 << 16  # a .npy header is at most this long (numpy writes 128 bytes, or a multiple of 64)
INFLATION_FLOOR = 16 << 20  # what any header may promise: little memory, and room for small constant test files
MAX_COUNT = (1 << 31) - 1  # the most Gaussians (or texels, entries) any file may state: more than any real capture
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


# ---------------------------------------------------------------------------------------------
# Reading


def input_size(path) -> int:
    """The size of `path`, or an InputFileError unless it is a regular file that exists."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except OSError as error:
        raise InputFileError(path, f"cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(path, "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(path, "is not a regular file (a device, pipe or socket), so it is not read")
    return info.st_size


@contextlib.contextmanager
def open_input(path: Path):
    """`path` open for reading, and its size, once it is known to be a regular file; an OSError while
    reading it becomes an InputFileError naming it."""
    input_size(path)
    try:  # non-blocking, then checked again on the open file: a FIFO swapped in meanwhile cannot hang us
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise InputFileError(path, f"cannot be read ({error.strerror})") from None
    with open(handle, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(path, "is not a regular file (a device, pipe or socket), so it is not read")
        try:
            yield file, info.st_size
        except OSError as error:
            raise InputFileError(path, f"cannot be read ({error.strerror})") from None


def read_file_bytes(path, length: int | None = None) -> bytes:
    """The first `length` bytes of a regular file (all of it when None: its real size bounds that)."""
    path = Path(path)
    with open_input(path) as (file, size):
        return file.read(size if length is None else min(length, size))


def whole_number(path, value, what: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """A count or size a file states (a header field, a JSON entry) as an int from `low` to `high`, or one
    InputFileError naming `what`: 1e999, -1, 2.5, "12" or true are refused before anything is sized by them."""
    whole = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and (isinstance(value, int) or (math.isfinite(value) and value.is_integer()))
    )
    if not whole or not low <= value <= high:
        raise InputFileError(path, f"its {what} is {value!r}; a whole number from {low:,} to {high:,} is expected")
    return int(value)


def check_inflation(path, stored: int, promised: int, what: str) -> None:
    """Refuse a header that promises more than MAX_INFLATION times the bytes that hold it (and over 16 MB)."""
    if promised > max(stored * MAX_INFLATION, INFLATION_FLOOR):
        raise InputFileError(
            path,
            f"its header promises {promised:,} bytes of {what} from {stored:,} stored bytes, more than "
            f"{MAX_INFLATION}x: refused as a corrupt header or a decompression bomb",
        )


def inflate_gzip(path, data: bytes, head_size: int, limit: Callable[[bytes], int]) -> bytes:
    """gzip `data` decompressed: `head_size` bytes first, then at most `limit(head)` bytes in all.

    The header decides the limit, so nothing beyond what it promises is ever allocated.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, head_size)
        most = limit(out)
        if len(out) == head_size and not inflater.eof:
            out += inflater.decompress(inflater.unconsumed_tail, most - len(out) + 1)
    except zlib.error as error:
        raise InputFileError(path, f"corrupt: the gzip data cannot be decompressed ({error})") from None
    if len(out) > most:
        raise InputFileError(path, f"decompresses to more than the {most:,} bytes its header promises")
    if not inflater.eof:
        raise InputFileError(path, "truncated: the gzip data ends early")
    return out


def inflate_zstd(path, data: bytes, size: int, what: str) -> bytes:
    """One zstd frame decompressed to exactly `size` bytes, reading at most one more (whatever the frame claims)."""
    try:
        from compression import zstd  # Python 3.14+

        reader, errors = zstd.ZstdFile(io.BytesIO(data)), (zstd.ZstdError, EOFError)
    except ImportError:
        try:
            import zstandard
        except ImportError:
            raise InputFileError(
                path,
                "holds zstd-compressed data; reading it needs the 'zstandard' Python package (pip install zstandard)",
            ) from None
        reader, errors = zstandard.ZstdDecompressor().stream_reader(data), (zstandard.ZstdError, EOFError)
    out = bytearray()
    try:
        with reader:
            while len(out) <= size:
                chunk = reader.read(size + 1 - len(out))
                if not chunk:
                    break
                out += chunk
    except errors as error:
        raise InputFileError(path, f"{what} is corrupt (zstd: {error})") from None
    if len(out) != size:
        raise InputFileError(
            path,
            f"{what} decompresses to {'more than ' if len(out) > size else ''}{len(out):,} bytes; "
            f"its table says {size:,}",
        )
    return bytes(out)


def read_npz_array(path, archive: zipfile.ZipFile, name: str, limit: int) -> np.ndarray:
    """Array `name` of an .npz archive, refused past `limit` bytes before it is inflated; never pickles."""
    try:
        info = archive.getinfo(name + ".npy")
    except KeyError:
        raise InputFileError(path, f"has no '{name}' array") from None
    if info.file_size > limit:
        raise InputFileError(path, f"its '{name}' array holds {info.file_size:,} bytes; at most {limit:,} are expected")
    with archive.open(info) as member:  # reads at most info.file_size bytes, whatever the stream holds
        return npy_array(path, member.read(limit + 1), f"'{name}' array")


def read_npz(path, fits: Callable[[str, tuple], bool]) -> dict[str, np.ndarray]:
    """Every array of an .npz file whose header shape `fits(name, shape)` allows, refused otherwise before
    it is inflated: a caller that knows what shapes to expect (a view's size) bounds what is allocated."""
    data = read_file_bytes(path)
    arrays = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    stream = io.BytesIO(member.read(NPY_HEADER_LIMIT))
                shape, _, dtype = npy_header(path, stream, f"'{name}' array")
                if not fits(name, shape):
                    raise InputFileError(path, f"its '{name}' array has shape {shape}, which does not fit this use")
                arrays[name] = read_npz_array(path, archive, name, math.prod(shape) * dtype.itemsize + stream.tell())
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as error:
        raise InputFileError(path, f"cannot be read as a .npz file ({error})") from None
    return arrays


def npy_header(path, stream: io.BytesIO, what: str) -> tuple[tuple, bool, np.dtype]:
    """The shape, Fortran order and dtype a .npy header promises, the stream left at the data."""
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(stream)
    except (ValueError, SyntaxError, TypeError) as error:
        raise InputFileError(path, f"its {what} is not a .npy array ({error})") from None
    if dtype.hasobject:
        raise InputFileError(path, f"its {what} holds Python objects, which are never loaded")
    return shape, fortran, dtype


def npy_array(path, raw: bytes, what: str = "array") -> np.ndarray:
    """The array in the bytes of a .npy file, allocated only once they hold every byte its header promises."""
    stream = io.BytesIO(raw)
    shape, fortran, dtype = npy_header(path, stream, what)
    promised = math.prod(shape) * dtype.itemsize
    if promised != len(raw) - stream.tell() or dtype.itemsize == 0:
        raise InputFileError(
            path,
            f"its {what} holds {len(raw) - stream.tell():,} bytes of data; its header "
            f"promises {promised:,} ({dtype} of shape {shape})",
        )
    flat = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran else "C").copy()


# ---------------------------------------------------------------------------------------------
# Writing


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # same path, symlink or hard link
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


def _probe_writable(folder: Path, option: str, target: Path) -> None:
    try:
        handle, probe = tempfile.mkstemp(prefix=".clickgauss-probe-", dir=folder)
    except OSError as error:
        raise UserError(f"{option} {target}: cannot write into the folder {folder} ({error.strerror})") from None
    try:
        os.close(handle)
    finally:  # also when Ctrl+C or SIGTERM lands here
        os.unlink(probe)


def check_outputs(inputs: dict, outputs: dict, folders: Iterable[str] = ()) -> None:
    """Refuse, before any work, outputs that would destroy an input or cannot be written.

    inputs, outputs: option name -> path (None: not given); `folders` names the outputs that are
    folders. An output file must not be an input (same path, symlink or hard link) nor replace a
    file inside an input folder; an output folder must not lie in an input folder; the folder
    written into must exist and take a file; no two outputs may be the same.
    """
    folders = set(folders)
    given_inputs = [(option, Path(path)) for option, path in inputs.items() if path is not None]
    written: list[tuple[str, Path]] = []
    for option, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        if option in folders:
            _check_output_folder(option, path, given_inputs)
        else:
            _check_output_file(option, path, given_inputs)
        for other_option, other in written:
            if _same_file(path, other) or os.path.realpath(path) == os.path.realpath(other):
                raise UserError(f"{option} {path}: {other_option} names the same place; give each output its own")
        written.append((option, path))


def _check_output_file(option: str, path: Path, inputs: list) -> None:
    if path.is_symlink():  # written through: its file is what must be writable and no input
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise UserError(f"{option} {path}: the folder {path.parent} does not exist")
    _probe_writable(path.parent, option, path)
    if not path.exists():
        return
    linked = os.stat(path).st_nlink > 1  # a hard link may share its bytes with a file in an input folder
    for input_option, source in inputs:
        if _same_file(path, source):
            raise UserError(
                f"{option} {path}: is the input {input_option} {source}; writing it would destroy that input"
            )
        if source.is_dir() and (_inside(path, source) or (linked and _links_into(path, source))):
            raise UserError(f"{option} {path}: would replace a file inside the input folder {input_option} {source}")


def _links_into(path: Path, folder: Path) -> bool:
    """Whether `path` is a hard link of a file somewhere under `folder`."""
    return any(_same_file(path, Path(root) / name) for root, _, names in os.walk(folder) for name in names)


def _check_output_folder(option: str, path: Path, inputs: list) -> None:
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: is a file; a folder is expected")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {path}: {existing} is not a folder")
    _probe_writable(existing, option, path)
    for input_option, source in inputs:
        if source.is_dir() and _inside(path, source):
            raise UserError(
                f"{option} {path}: lies in the input folder {input_option} {source}; write outputs elsewhere"
            )


def write_atomic(path, chunks, final: bool = False) -> None:
    """Write the byte chunks to `path` through a temporary file and a rename, so no reader sees half a file
    (`final`: see StagedOutputs)."""
    with StagedOutputs(final) as staged:
        staged.write(path, chunks)


class StagedOutputs:
    """Outputs staged beside their targets and renamed into place together when the block ends well.

    An error, Ctrl+C or SIGTERM before the end removes every staged file, so a command leaves all
    its outputs or none; a stop that arrives during the renames is too late: they complete, and the
    command ends as done. `final`: these are a command's last outputs, so once they are in place the
    run is done and stops stay ignored until the process ends (one arriving while it prints its summary
    would otherwise end it as stopped, exit 130, over complete outputs). Never final in Blender's process.
    A target that is a symbolic link is written through it, as Blender's own exporters do: the link
    stays, its file gets the new bytes.
    """

    def __init__(self, final: bool = False) -> None:
        self.final = final
        self.staged: list[tuple[str, Path]] = []  # (temporary file, target)
        self.made: list[Path] = []  # folders made for the outputs, outermost first

    def make_folder(self, folder) -> None:
        """Make `folder` and any missing parents for the outputs; removed again if the block fails."""
        folder = Path(folder)
        for missing in reversed([f for f in (folder, *folder.parents) if not f.exists()]):
            missing.mkdir()
            self.made.append(missing)

    def write(self, path, chunks) -> None:
        """Stage `chunks` as the file `path`, in a folder that exists.

        The temporary name is recorded before the file is created, so a stop that lands at any
        point of the write (even between creating the file and recording it) leaves nothing behind.
        """
        path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
        temporary = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.part")
        self.staged.append((temporary, path))
        with open(temporary, "xb") as out:  # x: never another's file
            for chunk in chunks:
                if isinstance(chunk, np.ndarray):
                    reserve(out, chunk.nbytes)
                    chunk = np.ascontiguousarray(chunk).data  # not tofile: it swallows a stop raised inside it
                out.write(chunk)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is None:
            self.commit()
        for temporary, _ in self.staged:
            if os.path.exists(temporary):
                os.unlink(temporary)
        if kind is not None:
            for folder in reversed(self.made):
                with contextlib.suppress(OSError):
                    folder.rmdir()
        return False

    def commit(self) -> None:
        in_main = threading.current_thread() is threading.main_thread()  # only it may set handlers
        # a handler installed from C (Blender's own) reads as None and could not be put back: left as it is
        handlers = {
            number: signal.signal(number, signal.SIG_IGN)
            for number in STOP_SIGNALS
            if in_main and signal.getsignal(number) is not None
        }
        try:
            for temporary, path in self.staged:
                os.replace(temporary, path)
        except BaseException:
            self.final = False  # not done after all: the error (and later stops) end the run
            raise
        finally:
            for number, handler in handlers.items() if not self.final else ():
                signal.signal(number, handler)


def reserve(out, size: int) -> None:
    """The next `size` bytes of the file `out` allocated before they are written (fallocate, where the system has
    it): half the time of a plain write at 236 MB."""
    if hasattr(os, "posix_fallocate") and size:
        out.flush()
        with contextlib.suppress(OSError):  # a file system without it: the write allocates as it goes
            os.posix_fallocate(out.fileno(), out.tell(), size)


def write_keeping(path, data: bytes, what: str) -> None:
    """write_atomic, or when that fails, `data` kept in the temporary folder and an error saying where.

    For results that took long to compute (a training): a full disk or a folder gone read-only at
    the end must not lose them.
    """
    path = Path(path)
    try:
        write_atomic(path, [data])
        return
    except OSError as error:
        problem = error.strerror or str(error)
    kept = Path(tempfile.gettempdir()) / f"{path.stem}.recovered-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}"
    try:
        write_atomic(kept, [data])
    except OSError as error:
        raise UserError(
            f"{path}: cannot be written ({problem}), nor can the {what} be kept in {kept} ({error.strerror})"
        ) from None
    raise UserError(
        f"{path}: cannot be written ({problem}); the {what} are kept in {kept}: move that file where you want it"
    )


def write_file(path: Path, chunks) -> None:
    """Write a splat file's byte chunks atomically; a missing folder or a failed write is a InputFileError."""
    write_files([(path, chunks)])


def write_files(files) -> None:
    """Write splat files, (path, byte chunks) pairs, all of them or none; a missing folder or a failed write is
    an InputFileError naming the file."""
    path = None
    try:
        with StagedOutputs() as staged:
            for path, chunks in files:
                path = Path(path)
                if not path.parent.is_dir():
                    raise InputFileError(path, "the folder to write into does not exist")
                staged.write(path, chunks)
    except OSError as error:
        raise InputFileError(path, f"cannot be written ({error.strerror})") from None
