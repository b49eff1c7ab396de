"""Test helpers for workflow authors: the scripted model double (no torch, no download).

from socflow.testing import ScriptedModel, ScriptRule
"""

from __future__ import annotations

from socflow.model.recorder import CallRecord, ModelCallRecorder
from socflow.model.scripted import ScriptedCall, ScriptedModel, ScriptRule

__all__ = ["CallRecord", "ModelCallRecorder", "ScriptRule", "ScriptedCall", "ScriptedModel"]
