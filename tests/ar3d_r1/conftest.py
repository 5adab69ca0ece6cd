"""Fixtures of the ar3d_r1 tests: the at-scale stand-ins and reference run, defined once here so that
their session scope is shared by every module that uses them (tests/ar3d_r1/scale_fixtures.py)."""

from scale_fixtures import reference_run, stand_ins  # noqa: F401
