from django.apps import AppConfig


class CvsDjangoBenchConfig(AppConfig):
    name = "cvs_django_bench"
    label = "cvs_django_bench"
    default_auto_field = "django.db.models.BigAutoField"
