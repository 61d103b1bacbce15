from django.apps import AppConfig


class HostoreBenchConfig(AppConfig):
    name = "hostore_bench"
    label = "hostore_bench"
    default_auto_field = "django.db.models.BigAutoField"
