"""Fine-tune the student on SFT records with TRL's SFTTrainer, on our own per-turn labels.

Why SFTTrainer and how it is kept from touching the labels: TRL 1.16 would
otherwise render and tokenize the conversations itself and build labels from
`assistant_only_loss`, which trains every assistant turn (student turns too).
So the dataset handed over is already tokenized (`input_ids` + `labels` from
`oec.train.masking`) and `dataset_kwargs={"skip_prepare_dataset": True}` skips
TRL's preparation altogether: no re-tokenizing, no mask rebuilding, no
truncation (records longer than max_length were already dropped whole). TRL's
`DataCollatorForLanguageModeling` uses a `labels` column as is and pads it
with -100. What TRL still adds over a bare `transformers.Trainer`: PEFT
wrapping, a fused LM head that never materializes the (seq x vocab) logits
(memory at long contexts), and token-level loss normalization across gradient
accumulation.

The checkpoint written to OUT is always a plain `save_pretrained` folder plus
the tokenizer: with LoRA, the adapter is merged first, so `hf:OUT` loads it
without peft. It is written to a temporary sibling folder and renamed into
place, with `oec_train.json` (data, counts, hyperparameters, loss curve,
duration) written last, so a half-written OUT never looks like a checkpoint.

Precision: float32 weights everywhere; bf16 autocast on GPUs that support it,
never on CPU (slow there and touchy at small batch sizes). The Trainer (through
accelerate) picks the device; launched with `accelerate launch`, it runs
data-parallel and only the main process writes OUT.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oec.models.hf import load_hf_causal_lm, resolve_checkpoint
from oec.models.smollm2 import set_offline
from oec.train.masking import encode_records, load_sft_file

log = logging.getLogger(__name__)

SUMMARY_FILE = "oec_train.json"
#: LoRA on every linear layer except the output head: the attention and MLP projections
LORA_TARGETS = "all-linear"
DEFAULT_LR_LORA = 2e-4
DEFAULT_LR_FULL = 1e-5


class TrainError(ValueError):
    """Training cannot start (bad spec, nothing to train, OUT in the way); the message says what to change."""


@dataclass
class TrainSummary:
    """What `oec train` did: written to OUT/oec_train.json and printed as a table."""

    data: str
    model: str
    base_checkpoint: str
    out: str
    trainer: str
    device: str
    records: int
    records_used: int
    dropped_too_long: int
    dropped_nothing_to_train: int
    dropped_token_boundary: int
    supervised_tokens: int
    total_tokens: int
    longest_tokens: int
    hyperparameters: dict[str, Any]
    steps: int
    duration_s: float
    train_s: float
    seconds_per_step: float | None
    final_loss: float | None
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    started_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n"


def model_source(model_spec: str) -> str:
    """`hf:smollm2-135m` / `hf:PATH` -> what `load_hf_causal_lm` takes; other backends cannot be trained here."""
    backend, sep, name = model_spec.partition(":")
    if not sep or backend != "hf" or not name.strip():
        raise TrainError(f"--model {model_spec!r}: only local transformers models can be trained; "
                         "expected hf:smollm2-135m or hf:/path/to/checkpoint")
    return name.strip()


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise TrainError(f"--out {out}: folder exists and is not empty; choose another or pass --overwrite")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    found = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return found


def _loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    keys = ("epoch", "loss", "learning_rate", "grad_norm", "mean_token_accuracy")
    return [{"step": int(entry["step"]), **{k: float(entry[k]) for k in keys if k in entry}}
            for entry in log_history if "loss" in entry and "step" in entry]


def train(data: Path, model_spec: str, out: Path, *, lora: bool = True, epochs: float = 1.0,
          lr: float | None = None, max_length: int = 4096, batch_size: int = 1, grad_accum: int = 4,
          seed: int = 0, max_steps: int | None = None, lora_r: int = 16, lora_alpha: int = 32,
          lora_dropout: float = 0.0, gradient_checkpointing: bool = True, overwrite: bool = False,
          logging_steps: int = 1) -> TrainSummary:
    """Fine-tune `model_spec` on the SFT records in `data` and write a plain checkpoint to `out`.

    `lr` None takes 2e-4 with LoRA, 1e-5 for a full fine-tune. `max_steps`
    (optimizer steps) overrides `epochs` when set. Seeded: the same data,
    spec and seed give the same run on the same hardware and library versions.
    """
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data, out = Path(data), Path(out)
    source = model_source(model_spec)
    _prepare_out(out, overwrite)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("grad_accum", grad_accum),
                        ("max_length", max_length), ("lora_r", lora_r), ("lora_alpha", lora_alpha)):
        if value <= 0:
            raise TrainError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if max_steps is not None and max_steps <= 0:
        raise TrainError(f"--max-steps must be positive, got {max_steps}")
    lr = lr if lr is not None else (DEFAULT_LR_LORA if lora else DEFAULT_LR_FULL)
    records = load_sft_file(data)  # bad data fails before the (slow) model load

    set_offline()
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    set_seed(seed)
    base_checkpoint = resolve_checkpoint(source)
    model, tokenizer = load_hf_causal_lm(source, dtype=torch.float32)
    encoded = encode_records(records, tokenizer, max_length)
    for message in encoded.boundary_errors[:3]:
        log.warning("dropped: %s", message)
    if not encoded.examples:
        raise TrainError(
            f"{data}: nothing to train: {encoded.records} records, {encoded.dropped_too_long} longer than "
            f"--max-length {max_length}, {encoded.dropped_nothing_to_train} with no trained turn, "
            f"{encoded.dropped_token_boundary} with tokens merged across a turn boundary")
    dataset = Dataset.from_dict({"input_ids": [e.input_ids for e in encoded.examples],
                                 "labels": [e.labels for e in encoded.examples]})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked (labels -100, attention 0): any id will do
    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)

    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                                 target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    hyper = {"lora": lora, "lora_r": lora_r if lora else None, "lora_alpha": lora_alpha if lora else None,
             "lora_dropout": lora_dropout if lora else None, "lora_targets": LORA_TARGETS if lora else None,
             "epochs": epochs, "max_steps": max_steps, "lr": lr, "lr_scheduler": "linear", "warmup_steps": 0,
             "max_length": max_length, "batch_size": batch_size, "grad_accum": grad_accum, "seed": seed,
             "bf16": bf16, "gradient_checkpointing": gradient_checkpointing}

    with tempfile.TemporaryDirectory(prefix="oec-train-") as scratch:
        args = SFTConfig(
            output_dir=scratch, num_train_epochs=epochs, max_steps=max_steps or -1, learning_rate=lr,
            lr_scheduler_type="linear", warmup_steps=0, per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=grad_accum, seed=seed, data_seed=seed, logging_steps=logging_steps,
            logging_first_step=True, save_strategy="no", report_to="none", bf16=bf16, fp16=False,
            activation_checkpointing=gradient_checkpointing, max_length=None,
            dataset_kwargs={"skip_prepare_dataset": True},  # our input_ids/labels, untouched
            dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                             processing_class=tokenizer, peft_config=peft_config)
        train_started = time.monotonic()
        result = trainer.train()
        train_s = time.monotonic() - train_started
        device = str(trainer.args.device)
        steps = int(result.global_step)
        curve = _loss_curve(trainer.state.log_history)
        trained = trainer.model
        if lora:
            trained = trained.merge_and_unload()  # a plain model: hf:OUT loads without peft
        summary = TrainSummary(
            data=str(data), model=model_spec, base_checkpoint=base_checkpoint, out=str(out),
            trainer="trl.SFTTrainer", device=device, records=encoded.records,
            records_used=len(encoded.examples), dropped_too_long=encoded.dropped_too_long,
            dropped_nothing_to_train=encoded.dropped_nothing_to_train,
            dropped_token_boundary=encoded.dropped_token_boundary,
            supervised_tokens=encoded.supervised_tokens, total_tokens=encoded.total_tokens,
            longest_tokens=encoded.longest, hyperparameters=hyper, steps=steps,
            duration_s=0.0, train_s=round(train_s, 3),
            seconds_per_step=round(train_s / steps, 3) if steps else None,
            final_loss=curve[-1]["loss"] if curve else None, loss_curve=curve, started_at=started_at,
            versions=_versions())
        if trainer.is_world_process_zero():  # under accelerate launch, OUT is the main process's to write
            _save(trained, tokenizer, out, summary, started, overwrite)
    return summary


def _save(model: Any, tokenizer: Any, out: Path, summary: TrainSummary, started: float, overwrite: bool) -> None:
    """Write model, tokenizer and summary to a sibling temp folder, then rename it to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.config.use_cache = True  # training turned the KV cache off; inference wants it
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        summary.duration_s = round(time.monotonic() - started, 3)
        (tmp / SUMMARY_FILE).write_text(summary.to_json(), encoding="utf-8")
        for path in [tmp, *tmp.iterdir()]:  # mkdtemp makes a private folder; this is an ordinary output
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if out.exists():
            _prepare_out(out, overwrite)  # re-check: something may have appeared during training
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
