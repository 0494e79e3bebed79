"""The editorial dashboard's building blocks: card HTML, Plotly charts, labels and session handlers.

app.py assembles them into the Gradio page; nothing here needs a running server, so tests call it directly.
"""

from __future__ import annotations

__all__ = ["cards", "charts", "i18n", "state"]
