"""The Hub side of speechgpt-hf: model cards for the repos it writes, and uploading them."""

from .cards import model_index, record_provenance, write_model_card

__all__ = ["model_index", "record_provenance", "write_model_card"]
