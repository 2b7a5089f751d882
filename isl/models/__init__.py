"""The networks: mixture-density head, LSTM and feedforward backbones, the LightningModule."""
