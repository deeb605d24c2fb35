"""Platform-neutral core of the GLM chatbot: turns in, streamed answers out."""

__version__ = "0.1.0"
