"""Fetch corpus archives and lists from a URL or a local mirror: resumable,
checksummed (MD5 or SHA-256 from conf/corpora/), with a clear offline error."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile

logger = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """The corpus could not be fetched; the message says how to provide it."""


def download_and_extract(url: str, dest: str, hint: str, timeout: float = 30.0) -> None:
    """Download the zip at ``url`` (``http(s)://``, ``file://`` or a local path)
    and extract it into ``dest``; ``hint`` names the option that avoids it.

    The archive is unpacked into a temporary sibling folder and renamed into
    place, so an interrupted download never leaves a half corpus at ``dest``.
    """
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=parent) as tmp:
        archive = os.path.join(tmp, "archive.zip")
        try:
            if os.path.exists(url):
                shutil.copyfile(url, archive)
            else:
                logger.info("downloading %s", url)
                with urllib.request.urlopen(url, timeout=timeout) as response, \
                        open(archive, "wb") as out:
                    shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise DownloadError(
                f"cannot download {url} ({err}); this machine may be offline. "
                f"Put the corpus at {dest} yourself or point {hint} at a folder "
                f"that has it.") from err
        unpacked = os.path.join(tmp, "unpacked")
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(unpacked)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{url} is not a zip archive: {err}") from err
        entries = os.listdir(unpacked)
        # GitHub archives wrap everything in one top-level folder.
        root = os.path.join(unpacked, entries[0]) if len(entries) == 1 else unpacked
        os.replace(root, dest)


# --------------------------------------------------------------------------
# Single files with checksums (corpus archives, trial lists)
# --------------------------------------------------------------------------

CHUNK = 1 << 20


def file_checksum(path: str, algorithm: str) -> str:
    """Hex digest of ``path`` with ``algorithm`` (md5, sha256), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str, checksum: str) -> None:
    """Check ``path`` against ``checksum`` (``md5:HEX`` or ``sha256:HEX``, or a
    bare 32/64-digit hex string); raise :class:`DownloadError` on a mismatch."""
    algorithm, _, expected = checksum.rpartition(":")
    algorithm = algorithm or {32: "md5", 64: "sha256"}.get(len(expected), "")
    if algorithm not in ("md5", "sha256"):
        raise DownloadError(f"checksum '{checksum}': give md5:HEX or sha256:HEX")
    actual = file_checksum(path, algorithm)
    if actual != expected.lower():
        raise DownloadError(f"{path}: {algorithm} is {actual}, expected {expected}; "
                            f"the file is corrupt or not the published one (remove it "
                            f"and download again)")


def fetch(url: str, dest: str, checksum: str = "", hint: str = "",
          timeout: float = 30.0) -> str:
    """Download ``url`` to the file ``dest`` once, resumably, and verify it.

    ``url`` is ``http(s)://``, ``file://`` or a local path (a mirror).  Bytes
    arrive in ``dest + '.part'``; a rerun after an interruption asks the
    server for the rest (an HTTP Range request) and starts over when the
    server ignores it.  ``dest`` appears only once complete and, when a
    ``checksum`` is given, verified.  An existing ``dest`` is verified and
    kept.  Offline, :class:`DownloadError` says where to put the file, and
    ``hint`` (a phrase such as "point --corpus-root at a copy") the other way.
    """
    if os.path.isfile(dest):
        if checksum:
            verify_checksum(dest, checksum)
        return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)) or ".", exist_ok=True)
    part = dest + ".part"
    try:
        source = url[len("file://"):] if url.startswith("file://") else url
        if os.path.exists(source):
            shutil.copyfile(source, part)
        else:
            _http_resume(url, part, timeout)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DownloadError(
            f"cannot download {url} ({err}); this machine may be offline. Fetch it "
            f"yourself to {dest}" + (f", or {hint}" if hint else "")
            + (f" (expected {checksum})" if checksum else "")) from err
    if checksum:
        try:
            verify_checksum(part, checksum)
        except DownloadError:
            os.unlink(part)
            raise
    else:
        logger.warning("%s: no checksum configured; not verified", url)
    os.replace(part, dest)
    return dest


def _http_resume(url: str, part: str, timeout: float) -> None:
    """Append the missing bytes of ``url`` to ``part`` (Range), or rewrite it."""
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    logger.info("downloading %s%s", url, f" (resuming at byte {have})" if have else "")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch
            return
        raise
    with response:
        resumed = have and response.status == 206
        with open(part, "ab" if resumed else "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)


def extract(archive: str, dest: str) -> None:
    """Unpack a .zip or .tar(.gz) archive into ``dest`` (created), atomically per
    archive: a marker ``dest/.<archive name>.extracted`` records completion."""
    marker = os.path.join(dest, f".{os.path.basename(archive)}.extracted")
    if os.path.isfile(marker):
        return
    os.makedirs(dest, exist_ok=True)
    logger.info("extracting %s into %s", archive, dest)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as err:
        raise DownloadError(f"{archive}: cannot extract ({err})") from err
    open(marker, "w").close()
