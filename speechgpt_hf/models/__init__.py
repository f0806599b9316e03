"""One folder a model, laid out as in transformers (configuration_*.py, modeling_*.py, processing_*.py)."""
