"""Django adapter: a drop-in for holcstore's ``TimeseriesChunkStore`` on curvestore's core.

Add ``"curvestore.adapters.django"`` to ``INSTALLED_APPS`` and import the abstract model from
:mod:`curvestore.adapters.django.models`. The ORM model class is the storage backend
(:class:`~curvestore.adapters.django.backend.DjangoModelBackend`); grid, merge, validation
and codecs come from the core. Nothing is imported here, so importing the package never
touches Django's app registry.
"""

__all__: list[str] = []
