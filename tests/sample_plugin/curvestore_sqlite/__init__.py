"""Sample curvestore plugin: SQLite backend (``sqlite:///path.db``) and a ``zlib`` codec."""
