"""Self-contained HTML reports (inline CSS and figures, no external files)."""
