"""The one page of the demo: a query that takes a few milliseconds of server time."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


def index(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(%s)", [settings.QUERY_SECONDS])
        (backend_pid, _) = cursor.fetchone()
    response = JsonResponse({"backend_pid": backend_pid})
    # As Django's CommonMiddleware would set it, where the demo runs no middleware: without
    # it gunicorn sends the body chunked.
    response["Content-Length"] = str(len(response.content))
    return response
