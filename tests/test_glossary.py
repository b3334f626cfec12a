"""GLOSSARY.md: every row has an English and a Chinese term, the README links it, and the key terms are in it."""

import re

from utils.lectures import ROOT

GLOSSARY = (ROOT / "GLOSSARY.md").read_text(encoding="utf-8")
ROWS = [[cell.strip() for cell in line.strip("|").split("|")] for line in GLOSSARY.splitlines()
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| English")]
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_row_pairs_an_english_term_with_a_chinese_one():
    assert len(ROWS) > 100
    for row in ROWS:
        assert len(row) == 3 and all(row), row
        english, chinese, _ = row
        assert re.search(r"[A-Za-z]", english) and CJK.search(chinese), row
    english = [row[0].lower() for row in ROWS]
    assert len(english) == len(set(english)), "a term is listed twice"


def test_the_readme_links_the_glossary():
    assert "(GLOSSARY.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_terms_every_notebook_leans_on_are_there():
    english = " ".join(row[0].lower() for row in ROWS)
    for term in ("recurrence", "hidden state", "backpropagation through time", "truncat", "exploding", "vanishing",
                 "clipping", "input gate", "forget gate", "output gate", "update gate", "reset gate", "cell state",
                 "image captioning", "teacher forcing", "beam search", "bleu", "soft attention", "hard attention",
                 "reinforce", "visual question answering", "fusion", "language prior", "perplexity", "word embedding"):
        assert term in english, term
