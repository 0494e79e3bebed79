"""Corpora on disk: the demo corpus in assets/, and corpora ingested under NEWSREC_HOME/corpora/."""
