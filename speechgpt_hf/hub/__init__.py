"""The Hub side of speechgpt-hf: model cards for the repos it writes, and uploading them."""

from .cards import model_index, record_provenance, write_model_card
from .push import check_folder, push

__all__ = ["check_folder", "model_index", "push", "record_provenance", "write_model_card"]
