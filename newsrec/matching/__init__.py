"""Matching that handles how people type: word forms, compounds, abbreviations, Chinese domain words, and
terms across languages. `newsrec/lexical.py` uses these to turn a query into concepts that an item covers.

- `stemming`: English word forms (earnings ~ earning, charge ~ charging), via PyStemmer (Snowball).
- `synonyms`: a small hand-kept table of abbreviations and synonyms (EV, AI, 人工智能, ...).
- `translation`: query terms into the corpus's other language, read off the multilingual encoder.
"""
