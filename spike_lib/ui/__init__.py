"""Layer 5, ui: plots, widgets, dashboard, config form, graph explorer, flowchart.

Imports every layer below it; never cli.
Taught in: book/how_to_use.md (The library)
"""
