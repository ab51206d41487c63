"""Bridges to other libraries' xLSTM models (imported on demand: `xlstm_cuda.integrations.transformers`)."""
