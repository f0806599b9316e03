"""The three SpeechGPT training stages, named once: each is also the SpeechInstruct configuration it trains on."""

MODALITY_ADAPTATION = "modality_adaptation"
CROSS_MODAL = "cross_modal"
CHAIN_OF_MODALITY = "chain_of_modality"
STAGES = (MODALITY_ADAPTATION, CROSS_MODAL, CHAIN_OF_MODALITY)
# Each stage's recipe in speechgpt_hf/training/recipes/ (a file name numbered so that a listing shows the order);
# `speechgpt-hf train --recipe` takes the stage's name or this one.
RECIPES = {stage: f"stage{number}_{stage}" for number, stage in enumerate(STAGES, start=1)}

__all__ = ["CHAIN_OF_MODALITY", "CROSS_MODAL", "MODALITY_ADAPTATION", "RECIPES", "STAGES"]
