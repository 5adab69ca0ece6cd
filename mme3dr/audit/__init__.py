"""The frame audit: generated assets turned relative to the references (``mme3dr audit RUN_DIR``)."""

from __future__ import annotations

from mme3dr.audit.frame import (
    AuditResult,
    audit_run,
    audit_samples,
    decide,
    frame_audit_entry,
    record_frame_audit,
)
from mme3dr.audit.rotations import CUBE_ROTATIONS, rotation_name

__all__ = ["CUBE_ROTATIONS", "AuditResult", "audit_run", "audit_samples", "decide", "frame_audit_entry",
           "record_frame_audit", "rotation_name"]
