"""Rendering comparisons and decision matrices: text table, markdown, JSON, HTML."""
