"""Evaluation: the FoleyWorld evaluator (judge), YAMNet judge, metrics, plots and reports.
"""
