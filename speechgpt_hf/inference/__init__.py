"""Inference: the chat session, the pipeline and streaming speech out."""
