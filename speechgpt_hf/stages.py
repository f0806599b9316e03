"""The three SpeechGPT training stages, named once: each is also the SpeechInstruct configuration it trains on."""

MODALITY_ADAPTATION = "modality_adaptation"
CROSS_MODAL = "cross_modal"
CHAIN_OF_MODALITY = "chain_of_modality"
STAGES = (MODALITY_ADAPTATION, CROSS_MODAL, CHAIN_OF_MODALITY)

__all__ = ["CHAIN_OF_MODALITY", "CROSS_MODAL", "MODALITY_ADAPTATION", "STAGES"]
