"""The model runtime: one interface (``ModelClient``), several backends chosen by settings.

Only this package imports torch and transformers, and only inside the backend modules that need them.
"""

from socflow.model.base import CallContext, Message, ModelClient

__all__ = ["CallContext", "Message", "ModelClient"]
