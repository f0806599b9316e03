"""Datasets: the SpeechInstruct builder, task descriptions, TTS engines and bulk unit extraction."""
