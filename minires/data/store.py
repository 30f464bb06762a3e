"""Where every dataset's files are looked for, and how a missing one is downloaded.

An explicit ``root`` is authoritative, as in torchvision: ``FashionMNIST(root="x")`` looks in ``x`` only
(``x/<name>/``, ``x/`` and torchvision's own folder under ``x``) and, with ``download=True``, downloads into
``x/<name>/``. Only ``root=None`` searches, in order:

    1. ``$MINIRES_DATA`` when set (``<dir>/<name>/`` and ``<dir>/``)
    2. the user cache, ``~/.cache/minires/<name>`` (``$XDG_CACHE_HOME/minires/<name>`` when that is set)
    3. the dataset's system folders (Debian's ``/usr/share/datasets/fashion-mnist``)

and downloads into the first of ``$MINIRES_DATA`` or the cache. ``fetch`` downloads into a temporary file
beside the target, verifies it and only then renames it: the target is either absent or whole and
verified.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from ..fileio import atomic_open
from .idx import DataFileError


def cache_dir() -> Path:
    """The user cache of minires's datasets: ``$XDG_CACHE_HOME/minires`` or ``~/.cache/minires``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minires"


def search_dirs(
    name: str, root: str | None, system_dirs: Sequence[str] = (), torchvision_dirs: Sequence[str] = ()
) -> list[Path]:
    """The folders looked in, in order: under ``root`` only when it is given, else ``$MINIRES_DATA``, the
    cache and ``system_dirs``. ``torchvision_dirs`` are the folders torchvision keeps the same files in,
    relative to its root (``FashionMNIST/raw``), looked in under ``root`` and ``$MINIRES_DATA``."""
    first = root if root is not None else os.environ.get("MINIRES_DATA") or None
    dirs: list[Path] = []
    if first is not None:
        dirs += [Path(first) / name, Path(first)] + [Path(first) / d for d in torchvision_dirs]
    if root is None:
        dirs += [cache_dir() / name] + [Path(d) for d in system_dirs]
    return dirs


def download_dir(name: str, root: str | None) -> Path:
    """Where a download goes: ``<root or $MINIRES_DATA or the cache>/<name>``."""
    first = root if root is not None else os.environ.get("MINIRES_DATA") or None
    return (Path(first) if first is not None else cache_dir()) / name


def not_found(
    owner: str,
    what: str,
    root: str | None,
    name: str,
    tried: Sequence[str],
    download: bool,
    fix_hint: str,
) -> FileNotFoundError:
    """The error for a file found nowhere: every place looked, and how to fix it. With an explicit
    ``root``, the fix names that root (it is the only place looked)."""
    if root is not None:
        fix = (
            f"put the files in {Path(root) / name}"
            + ("" if download else ", pass download=True to download them there")
            + ", or pass root=None to search $MINIRES_DATA, the user cache and the system folders"
        )
        where = f"in root={root!r} (an explicit root is the only place looked)"
    else:
        fix = ("pass download=True, or " if not download else "") + fix_hint
        where = "anywhere minires looks"
    return FileNotFoundError(
        f"{owner}: {what} was not found {where}; looked for {', '.join(tried)}. To fix: {fix}."
    )


def md5_hex(content: bytes) -> str:
    """The MD5 of ``content``, as 32 hex digits (the checksum the datasets' authors publish)."""
    return hashlib.md5(content, usedforsecurity=False).hexdigest()


def file_md5(path: str | os.PathLike) -> str:
    """The MD5 of the file at ``path``, read in chunks (a 170 MB archive is not held twice)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, target: Path, verify: Callable[[str], None]) -> None:
    """Download ``url`` into a temporary file beside ``target``, ``verify(temp_path)``, then rename it:
    ``target`` is either absent or whole and verified (``atomic_open`` removes the temporary file on any
    failure)."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a download must not fail for want of a progress bar
        tqdm = None
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = (
            None
            if tqdm is None
            else tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False)
        )
        while chunk := response.read(1 << 16):
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        if total is not None and out.tell() != total:
            raise DataFileError(f"the download stopped after {out.tell()} of {total} bytes")
        out.flush()
        verify(out.name)


def fetch_from_mirrors(
    owner: str,
    file_name: str,
    mirrors: Sequence[str],
    target: Path,
    verify: Callable[[str, str], None],
    fix: str,
) -> str:
    """Try each mirror in turn for ``file_name``; ``verify(temp_path, url)`` judges a download. Returns
    the path of the verified file, or raises ``DataFileError`` listing what each mirror answered."""
    errors = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{file_name}"
        try:
            fetch(url, target, lambda path, url=url: verify(path, url))
            return str(target)
        except (OSError, DataFileError) as exc:  # URLError is an OSError
            errors.append(f"{url}: {exc}")
    raise DataFileError(
        f"{owner}: could not download {file_name}:\n  " + "\n  ".join(errors) + f"\nTo fix: {fix}."
    )
