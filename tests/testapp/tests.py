"""Run by `manage.py test` in a subprocess: Django's test machinery on the pooled backend."""

import datetime

from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase

from testapp.models import Event


class PooledTestCase(TestCase):
    def test_orm_inside_the_test_transaction(self):
        Event.objects.create(
            name="a",
            payload={"k": [1, 2]},
            happened_at=datetime.datetime.now(datetime.timezone.utc),
        )
        self.assertEqual(Event.objects.get().payload, {"k": [1, 2]})
        self.assertTrue(connection.settings_dict["NAME"].startswith("test_"))
        self.assertIsNotNone(connection.geventpool)

    def test_rollback_between_tests(self):
        self.assertEqual(Event.objects.count(), 0)


class PooledTransactionTestCase(TransactionTestCase):
    def test_commit_and_reconnect(self):
        with transaction.atomic():
            Event.objects.create(name="b", happened_at=datetime.datetime.now(datetime.timezone.utc))
        connection.close()
        self.assertEqual(Event.objects.filter(name="b").count(), 1)
        self.assertEqual(connection.geventpool.stats()["in_use"], 1)
