"""The Gradio Space: the app (`speechgpt_hf.space.app`, imports gradio) and `assemble_space`, which writes a Space
folder that carries this package's source, installs its pinned requirements and runs the app."""

from .assemble import assemble_space

__all__ = ["assemble_space"]
