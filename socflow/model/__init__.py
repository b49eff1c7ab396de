"""The model runtime: one interface (``ModelClient``), several backends chosen by settings.

Only this package imports torch and transformers, and only inside the backend modules that need them
(``socflow.model.hf``, ``socflow.model.prepare``, ``socflow.model.tiny``), never at import time.

    build_model_client(settings.model, ModelCallRecorder(factory))  -> ModelClient
    socflow.testing.ScriptedModel / ScriptRule                       -> the scripted double for tests
    socflow.model.schema.register_schema                             -> check a structured-output schema early
"""

from socflow.model.base import CallContext, Message, ModelClient
from socflow.model.recorder import CallRecord, ModelCallRecorder
from socflow.model.schema import BoundedSchema, bounded_schema, register_schema

__all__ = [
    "BoundedSchema",
    "CallContext",
    "CallRecord",
    "Message",
    "ModelCallRecorder",
    "ModelClient",
    "bounded_schema",
    "register_schema",
]
