"""Pure-PyTorch reference of the xLSTM cells: the readable definition of truth.

Every kernel in this project is judged against these functions run in float64
(see the spec, ../shared/xlstm-spec.md in the development checkout). They are written for clarity, not speed.
"""

from .layer_parts import causal_conv1d_silu, headwise_linear, mlstm_output_gate
from .mlstm import mlstm_chunkwise, mlstm_parallel, mlstm_recurrent, mlstm_step
from .slstm import slstm

__all__ = ["causal_conv1d_silu", "headwise_linear", "mlstm_output_gate", "slstm", "mlstm_recurrent", "mlstm_parallel", "mlstm_chunkwise",
           "mlstm_step"]
