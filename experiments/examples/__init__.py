"""Example scripts, one per agent family, to copy and adapt.

Run one with ``python -m shopgym.experiments.examples.NAME``.
"""
