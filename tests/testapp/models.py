from django.db import models


class Event(models.Model):
    name = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    happened_at = models.DateTimeField()

    class Meta:
        app_label = "testapp"
