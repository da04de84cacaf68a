"""Subgroup audits of face detectors: adapters, prediction, metrics, statistics and the engine."""
from debias.audit.adapters import Adapter, load_adapter
from debias.audit.engine import AuditResult, audit_table, check_fail_on, run_audit
from debias.audit.metrics import audit_model, choose_threshold, expected_calibration_error

__all__ = ["Adapter", "load_adapter", "AuditResult", "audit_table", "check_fail_on", "run_audit", "audit_model",
           "choose_threshold", "expected_calibration_error"]
