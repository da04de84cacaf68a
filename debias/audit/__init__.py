"""Subgroup audits of face detectors: adapters, prediction, metrics, statistics and the engine.

This package returns data; :mod:`debias.report` writes it (``debias.report.outputs.run_audit`` is the
whole job behind ``debias audit``).
"""
from debias.audit.adapters import Adapter, load_adapter
from debias.audit.engine import AuditResult, audit_table, check_fail_on
from debias.audit.metrics import audit_model, choose_threshold, expected_calibration_error

__all__ = ["Adapter", "load_adapter", "AuditResult", "audit_table", "check_fail_on", "audit_model",
           "choose_threshold", "expected_calibration_error"]
