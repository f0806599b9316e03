"""Converters from the original SpeechGPT release to this package's repos, none of which needs fairseq."""
