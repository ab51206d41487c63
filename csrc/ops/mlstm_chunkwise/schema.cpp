// The mlstm_chunkwise op's schemas (the forward and its backward); the kernel files register the implementations.
#include "common/registration.h"

XLSTM_OP_SCHEMAS(m) {
  m.def(
      "mlstm_chunkwise_forward(Tensor q, Tensor k, Tensor v, Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, "
      "int chunk_size, float eps) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "mlstm_chunkwise_backward(Tensor dh, Tensor dC_T, Tensor dn_T, Tensor dm_T, Tensor q, Tensor k, Tensor v, "
      "Tensor i, Tensor f, Tensor C, Tensor n, Tensor m, Tensor h, Tensor C_T, Tensor n_T, Tensor C_starts, "
      "Tensor n_starts, Tensor m_all, Tensor qn_all, int chunk_size, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}
