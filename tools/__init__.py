"""socflow tools: ATT&CK catalog and mapping (``tools.attack``), case-note drafting (``tools.notes``).

Tools may import socflow core modules, never ``workflows`` or ``workers``.
"""
