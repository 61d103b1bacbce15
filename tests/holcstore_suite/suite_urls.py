"""An empty URLconf: holcstore's sync tests install their own (``override_settings``)."""

urlpatterns: list[object] = []
