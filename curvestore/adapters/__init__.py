"""Framework adapters (Django, HTTP) built on the curvestore core."""
