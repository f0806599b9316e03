"""The command line hides the named library messages a user cannot act on, and nothing else."""

import logging
import warnings

from speechgpt_hf_cli._library_warnings import quiet_library_warnings


def test_named_library_messages_are_hidden_and_others_shown(caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        warnings.warn(
            "`gradient_checkpointing` is deprecated and will be removed in v6. Use ...", FutureWarning, stacklevel=2
        )
        warnings.warn("Some other deprecation the user should see.", FutureWarning, stacklevel=2)
        warnings.warn("This SpeechUnitTokenizer's codebook was never fitted.", UserWarning, stacklevel=2)
    assert [str(w.message) for w in caught] == [
        "Some other deprecation the user should see.",
        "This SpeechUnitTokenizer's codebook was never fitted.",
    ]
    generation = logging.getLogger("transformers.generation.utils")
    with caplog.at_level(logging.WARNING, logger="transformers.generation.utils"):
        generation.warning("Both `max_new_tokens` (=38) and `max_length`(=448) seem to have been set. ...")
        generation.warning("Setting `pad_token_id` to `eos_token_id`:2 for open-end generation.")
    assert [r.getMessage() for r in caplog.records] == [
        "Setting `pad_token_id` to `eos_token_id`:2 for open-end generation."
    ]
    quiet_library_warnings()  # a second call adds no second filter
    assert len(generation.filters) == 1
