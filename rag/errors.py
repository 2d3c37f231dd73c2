"""Errors the project raises: each carries a message a user can act on."""


class RagError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(RagError):
    """The configuration is missing or contradictory."""


class LoaderError(RagError):
    """A file could not be read as a document."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class EmbeddingError(RagError):
    """The embedding model could not be loaded or did not answer."""


class StoreError(RagError):
    """Milvus could not be reached or refused an operation."""


class ModelMismatchError(StoreError):
    """The collection was built with another embedding model."""


class DocumentNotFoundError(StoreError):
    """No document of that name is in the knowledge base."""


class LLMError(RagError):
    """The language-model server failed; the message says what to do."""


class WorkspaceError(RagError):
    """The app's own database (accounts, conversations, feedback) failed or refused."""


class AccessDenied(RagError):
    """The signed-in account may not do this; the message says what it needs."""
