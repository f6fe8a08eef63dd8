from django.contrib.gis.db import models


class Place(models.Model):
    """A place with both kinds of PostGIS column: a geography point and a geometry polygon."""

    name = models.CharField(max_length=100)
    # geography: distances in metres, on the sphere.
    location = models.PointField(geography=True)
    area = models.PolygonField()

    class Meta:
        app_label = "geoapp"
