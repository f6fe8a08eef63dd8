"""GeoDjango's PostGIS backend, with connections from the geventpool pool."""
