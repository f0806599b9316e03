"""`speechgpt-hf` with accelerate's FSDP enabled on CPU processes, for the FSDP tests (gloo backend).

accelerate turns an FSDP launch into FSDP only on accelerators; on CPU processes it quietly falls back to plain
data parallelism. torch's FSDP2 itself runs on gloo, so this entry point lifts that one check and then runs the
command line as `accelerate launch --config_file fsdp2.yaml -m speechgpt_hf_cli` would on GPUs.
"""

import sys

from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

_original_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs) -> None:
    _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin


if __name__ == "__main__":
    AcceleratorState.__init__ = _init_with_fsdp_on_cpu
    import speechgpt_hf_cli

    sys.exit(speechgpt_hf_cli.main(sys.argv[1:]))
