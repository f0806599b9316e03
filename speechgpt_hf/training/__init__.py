"""Training recipes: the three SpeechGPT stages on TRL and the vocoder GAN loop."""
