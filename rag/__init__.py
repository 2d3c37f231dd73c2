"""gpt-oss-rag: a self-hosted knowledge-base chat over Milvus and gpt-oss."""

__version__ = "0.1.0"
