"""Composing and running a training run: the config schema and job names (config), the run's
directory and resume rules (rundir), the points schedule and progress (callbacks, schedule),
checkpoints, devices, loggers (W&B offline included), the one-line input errors (usage), the
Hydra entry (train) and the LightningCLI (cli)."""
