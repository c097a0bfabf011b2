"""Fetch a corpus archive from a URL or a local mirror, with a clear offline error."""
from __future__ import annotations

import logging
import os
import shutil
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
