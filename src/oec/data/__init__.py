"""Data: filters over trajectories and exporters to loss-masked fine-tuning records."""
