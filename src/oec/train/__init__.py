"""Supervised fine-tuning of the student on exported SFT records, with per-turn loss masks.

`masking` turns records into token ids and labels (only flagged assistant
turns supervised); `trainer` runs TRL's SFTTrainer on them and writes a plain
checkpoint that `hf:PATH` loads. Torch and TRL are imported only by `trainer`.
"""
