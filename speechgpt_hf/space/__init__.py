"""The Gradio Space: the app (`speechgpt_hf.space.app`, imports gradio) and `assemble_space`, which writes a Space
folder that installs this package from its own wheel and runs the app."""

from .assemble import assemble_space

__all__ = ["assemble_space"]
