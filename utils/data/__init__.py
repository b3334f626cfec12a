"""The course's data: text corpora for the character language models, and synthetic tasks."""

from .corpus import Corpus, CorpusError, fetch_shakespeare, load_corpus, text_corpus

__all__ = ["Corpus", "CorpusError", "fetch_shakespeare", "load_corpus", "text_corpus"]
