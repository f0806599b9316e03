"""The former import path of `speechgpt_hf.training.sft`, the stages' training code: importing it gives that module
itself, so code written against `speechgpt_hf.training.stages` keeps working. The stage names are in
`speechgpt_hf.stages`."""

import sys

from . import sft

sys.modules[__name__] = sft
