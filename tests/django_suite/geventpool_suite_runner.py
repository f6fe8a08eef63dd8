"""A test runner for Django's runtests.py that writes each test's outcome to a JSON file.

Django's parallel runner replays the events of its workers on the parent's result object,
so counting there sees every test, whichever process ran it.
"""

import json
import os
import re
import traceback
import unittest

from django.test.runner import DiscoverRunner

# Worst first: a test that failed in one sub-test and passed in another has failed.
_RANK = ["error", "failed", "unexpected_success", "passed", "expected_failure", "skipped"]


def test_name(test):
    # Errors in setUpClass/setUpModule come as a placeholder named
    # "setUpClass (module.Class)" rather than a test.
    name = test.id()
    holder = re.fullmatch(r"\w+ \(([\w.]+)\)", name)
    return holder.group(1) if holder else name


class TallyResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}
        self.details = {}

    def _record(self, test, outcome, err=None):
        name = test_name(test)
        known = self.outcomes.get(name)
        if known is None or _RANK.index(outcome) < _RANK.index(known):
            self.outcomes[name] = outcome
        if err is not None and name not in self.details:
            lines = traceback.format_exception(*err)
            self.details[name] = "".join(lines)[-3000:]

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped")
        self.details.setdefault(test_name(test), reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "expected_failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected_success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "failed" if failed else "error", err)


class TallyRunner(DiscoverRunner):
    def get_resultclass(self):
        return TallyResult

    def run_suite(self, suite, **kwargs):
        result = super().run_suite(suite, **kwargs)
        report = os.environ.get("GEVENTPOOL_SUITE_REPORT")
        if report:
            with open(report, "w") as out:
                json.dump({"outcomes": result.outcomes, "details": result.details}, out)
        return result
