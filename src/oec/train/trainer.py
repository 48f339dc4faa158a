"""Fine-tune the student on SFT records with TRL's SFTTrainer, on our own per-turn labels.

Why SFTTrainer and how it is kept from touching the labels: TRL 1.16 would
otherwise render and tokenize the conversations itself and build labels from
`assistant_only_loss`, which trains every assistant turn (student turns too).
So the dataset handed over is already tokenized (`input_ids` + `labels` from
`oec.train.masking`) and `dataset_kwargs={"skip_prepare_dataset": True}` skips
TRL's preparation altogether: no re-tokenizing, no mask rebuilding, no
truncation (records longer than max_length were already cut into windows). TRL's
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

Precision (`oec.train.precision`): `--precision auto` trains bf16 weights on
GPUs that support it, fp32 master weights with fp16 autocast on other CUDA
GPUs, fp32 on CPU; OUT is saved in the dtype the weights were trained in.

Scale: with `--save-steps N` the Trainer checkpoints into `OUT.work/`
(`oec.train.checkpoints`) and `--resume` continues from the latest one.
Launched with `accelerate launch` (configs in `oec.train.launch`) it runs
data-parallel, FSDP or ZeRO-3; only the main process writes OUT, and a
sharded model is gathered through the Trainer's own `save_model`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oec.models.hf import load_hf_causal_lm, resolve_checkpoint
from oec.models.smollm2 import set_offline
from oec.train.checkpoints import (
    ResumeError,
    latest_checkpoint,
    prepare_work,
    record_run,
    run_identity,
    work_dir,
)
from oec.train.masking import EncodedDataset, encode_records, load_sft_file
from oec.train.precision import Precision, resolve_precision

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
    records_used: int  # records with at least one example
    dropped_too_long: int  # records none of whose trained turns fit max_length
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
    student_format: str = "text"  # the format the records (and so the trained student) speak; eval follows it
    max_length: int | None = None  # the length limit used (the model's context unless one was given)
    examples: int = 0  # training examples: one per record, or several for a windowed record
    windowed_records: int = 0  # records longer than max_length, cut into windows
    dropped_turns_too_long: int = 0  # trained turns longer than max_length on their own
    weights_dtype: str = ""  # what OUT's weights are stored in (config.json says the same)
    resumed_from_step: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n"


def model_source(model_spec: str) -> str:
    """`hf:smollm2-135m` / `hf:PATH` -> what `load_hf_causal_lm` takes; other backends cannot be trained here."""
    backend, sep, name = model_spec.partition(":")
    if not sep or backend != "hf" or not name.strip():
        raise TrainError(f"--model {model_spec!r}: only local transformers models can be trained; "
                         "expected hf:smollm2-135m or hf:/path/to/checkpoint")
    return name.strip()


def training_threads() -> int:
    """Every core this process may use ($OEC_TORCH_THREADS, else the cores over the processes launched).

    Generation gives torch half the cores (`configure_cpu_threads`: sandboxed commands run beside it), and
    torch keeps that setting for the process; training runs alone, so after a collection in the same process
    (`oec run`, `oec experiment`, the demo) it would otherwise crawl on one core of two: measured 78 s per
    step against 33 s."""
    import os

    world = int(os.environ.get("WORLD_SIZE") or 1)
    return int(os.environ.get("OEC_TORCH_THREADS") or max(1, (os.cpu_count() or 1) // world))


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


def context_length(model: Any, fallback: int = 4096) -> int:
    """The model's context in tokens (its config's max_position_embeddings), the default length limit."""
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else fallback


def _records_format(data: Path, records: list, asked: str | None) -> str:
    """The one student format the records are in; mixed formats, or another one asked for, are errors."""
    formats = sorted({r.student_format for r in records})
    if len(formats) > 1:
        raise TrainError(f"{data}: the records mix student formats ({', '.join(formats)}); export one run's "
                         "student in one format")
    if asked is not None and asked not in ("text", "native"):
        raise TrainError(f"--student-format {asked}: expected text or native")
    if asked is not None and asked != formats[0]:
        raise TrainError(f"--student-format {asked}: {data} is in the {formats[0]} format (exported for the run's "
                         "student); train and evaluate the student in the format it was collected in")
    return formats[0]


def train(data: Path, model_spec: str, out: Path, *, lora: bool = True, epochs: float = 1.0,
          lr: float | None = None, max_length: int | None = None, batch_size: int = 1, grad_accum: int = 4,
          seed: int = 0, max_steps: int | None = None, lora_r: int = 16, lora_alpha: int = 32,
          lora_dropout: float = 0.0, gradient_checkpointing: bool = True, overwrite: bool = False,
          logging_steps: int = 1, precision: str = "auto", warmup: float = 0.0, lr_scheduler: str = "linear",
          save_steps: int | None = None, resume: bool = False, long_records: str = "window",
          student_format: str | None = None) -> TrainSummary:
    """Fine-tune `model_spec` on the SFT records in `data` and write a plain checkpoint to `out`.

    `lr` None takes 2e-4 with LoRA, 1e-5 for a full fine-tune. `max_steps`
    (optimizer steps) overrides `epochs` when set. `warmup` is a step count
    when >= 1, else a fraction of the steps. `save_steps` checkpoints into
    `OUT.work` every N optimizer steps; `resume` continues from the latest of
    those (same data and settings only). Seeded: the same data, spec and seed
    give the same run on the same hardware and library versions.

    `max_length` None follows the model's context (`max_position_embeddings`);
    longer records are cut into windows at turn boundaries (`long_records`
    "window", see `oec.train.masking.plan_windows`) or dropped ("drop"), and
    counted either way. `student_format` checks the records' format; the one
    they are in is recorded, so `hf:OUT` is evaluated in it.
    """
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data, out = Path(data), Path(out)
    source = model_source(model_spec)
    _prepare_out(out, overwrite)
    _check_settings(epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
                    lora_r=lora_r, lora_alpha=lora_alpha, max_steps=max_steps, save_steps=save_steps, warmup=warmup,
                    lr_scheduler=lr_scheduler, long_records=long_records)
    try:
        resolved = resolve_precision(precision)
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    if resolved.warning:
        log.warning("%s", resolved.warning)
    lr = lr if lr is not None else (DEFAULT_LR_LORA if lora else DEFAULT_LR_FULL)
    records = load_sft_file(data)  # bad data fails before the (slow) model load
    fmt = _records_format(data, records, student_format)
    hyper = {"lora": lora, "lora_r": lora_r if lora else None, "lora_alpha": lora_alpha if lora else None,
             "lora_dropout": lora_dropout if lora else None, "lora_targets": LORA_TARGETS if lora else None,
             "epochs": epochs, "max_steps": max_steps, "lr": lr, "lr_scheduler": lr_scheduler, "warmup": warmup,
             "max_length": max_length, "batch_size": batch_size, "grad_accum": grad_accum, "seed": seed,
             "precision": resolved.name, "bf16": resolved.bf16_autocast,
             "gradient_checkpointing": gradient_checkpointing, "save_steps": save_steps,
             "long_records": long_records, "student_format": fmt}
    work, identity = work_dir(out), run_identity(data, model_spec, hyper)
    try:
        checkpoint = prepare_work(work, identity, resume=resume, overwrite=overwrite, is_main=is_main_process())
    except ResumeError as exc:
        raise TrainError(str(exc)) from exc

    set_offline()
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    set_seed(seed)
    base_checkpoint = resolve_checkpoint(source)
    model, tokenizer = load_hf_causal_lm(source, dtype=resolved.torch_dtype())
    torch.set_num_threads(training_threads())
    max_length = max_length or context_length(model)
    hyper["max_length"] = max_length
    encoded = _encode(data, records, tokenizer, max_length, long_records)
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

    with _note_interruption(work, identity):
        args = SFTConfig(
            output_dir=str(work), num_train_epochs=epochs, max_steps=max_steps or -1, learning_rate=lr,
            lr_scheduler_type=lr_scheduler, warmup_steps=warmup, per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=grad_accum, seed=seed, data_seed=seed, logging_steps=logging_steps,
            save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
            **_fixed_settings(resolved, gradient_checkpointing, torch.cuda.is_available()))
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                             processing_class=tokenizer, peft_config=peft_config)
        train_started = time.monotonic()
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        train_s = time.monotonic() - train_started
        device = str(trainer.args.device)
        steps = int(result.global_step)
        resumed_step = _checkpoint_step(checkpoint)
        steps_here = steps - (resumed_step or 0)
        curve = _loss_curve(trainer.state.log_history)
        trained = _trained_model(trainer, lora, resolved, work)
        summary = TrainSummary(
            data=str(data), model=model_spec, base_checkpoint=base_checkpoint, out=str(out),
            trainer="trl.SFTTrainer", device=device, **_data_counts(encoded), hyperparameters=hyper, steps=steps,
            duration_s=0.0, train_s=round(train_s, 3),
            seconds_per_step=round(train_s / steps_here, 3) if steps_here > 0 else None,
            final_loss=curve[-1]["loss"] if curve else None, loss_curve=curve, started_at=started_at,
            versions=_versions(), resumed_from_step=resumed_step, student_format=fmt, max_length=max_length)
        if trainer.is_world_process_zero():  # under accelerate launch, OUT is the main process's to write
            summary.weights_dtype = _weights_dtype(trained)
            _save(trained, tokenizer, out, summary, started, overwrite)
            shutil.rmtree(work, ignore_errors=True)  # OUT is complete: the checkpoints are no longer needed
    return summary


def _fixed_settings(resolved: Any, gradient_checkpointing: bool, cuda: bool) -> dict[str, Any]:
    """The SFTConfig settings that follow from oec's design rather than from the user's flags."""
    return {
        "logging_first_step": True, "report_to": "none", "save_total_limit": 2,
        "bf16": resolved.bf16_autocast, "fp16": resolved.fp16_autocast,
        "activation_checkpointing": gradient_checkpointing,
        "activation_checkpointing_kwargs": {"use_reentrant": False} if gradient_checkpointing else None,
        "max_length": None, "dataset_kwargs": {"skip_prepare_dataset": True},  # our input_ids/labels, untouched
        "dataloader_num_workers": 0, "dataloader_pin_memory": cuda,
        "use_cpu": resolved.bf16_autocast and not cuda,  # else transformers refuses bf16 on a CPU-only machine
    }


def _check_settings(*, epochs: float, batch_size: int, grad_accum: int, max_length: int | None, lora_r: int,
                    lora_alpha: int, max_steps: int | None, save_steps: int | None, warmup: float,
                    lr_scheduler: str, long_records: str) -> None:
    """Refuse impossible settings before anything slow happens, naming the flag."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("grad_accum", grad_accum),
                        ("max_length", max_length if max_length is not None else 1), ("lora_r", lora_r),
                        ("lora_alpha", lora_alpha), ("max_steps", max_steps or 1), ("save_steps", save_steps or 1)):
        if value <= 0:
            raise TrainError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if warmup < 0:
        raise TrainError(f"--warmup must be >= 0, got {warmup}")
    if long_records not in ("window", "drop"):
        raise TrainError(f"--long-records {long_records}: expected window or drop")
    _check_scheduler(lr_scheduler)


def _encode(data: Path, records: list, tokenizer: Any, max_length: int, long_records: str) -> EncodedDataset:
    """The records as training examples; nothing to train is an error that says where the records went."""
    encoded = encode_records(records, tokenizer, max_length, long_records)  # type: ignore[arg-type]
    for message in encoded.boundary_errors[:3]:
        log.warning("dropped: %s", message)
    if not encoded.examples:
        raise TrainError(
            f"{data}: nothing to train: {encoded.records} records, {encoded.dropped_too_long} longer than "
            f"--max-length {max_length} (with {encoded.dropped_turns_too_long} trained turns longer than it on "
            f"their own), {encoded.dropped_nothing_to_train} with no trained turn, "
            f"{encoded.dropped_token_boundary} with tokens merged across a turn boundary")
    return encoded


def _data_counts(encoded: EncodedDataset) -> dict[str, int]:
    """The summary's counts of what was trained and what was left out."""
    return {"records": encoded.records, "records_used": len({e.record_id.split("#w")[0] for e in encoded.examples}),
            "dropped_too_long": encoded.dropped_too_long, "dropped_nothing_to_train": encoded.dropped_nothing_to_train,
            "dropped_token_boundary": encoded.dropped_token_boundary, "supervised_tokens": encoded.supervised_tokens,
            "total_tokens": encoded.total_tokens, "longest_tokens": encoded.longest,
            "examples": len(encoded.examples), "windowed_records": encoded.windowed_records,
            "dropped_turns_too_long": encoded.dropped_turns_too_long}


def _check_scheduler(name: str) -> None:
    """Fail on an unknown --lr-scheduler before the model loads, listing the ones there are."""
    from transformers.trainer_utils import SchedulerType

    names = [s.value for s in SchedulerType]
    if name not in names:
        raise TrainError(f"--lr-scheduler {name!r}: choose one of {', '.join(names)}")


@contextlib.contextmanager
def _note_interruption(work: Path, identity: dict[str, Any]) -> Iterator[None]:
    """Record the run in the work folder; if it dies, keep the folder only when it holds a checkpoint.

    A run that dies after a checkpoint says how to continue it (the traceback
    alone does not); one that dies before leaves no folder behind.
    """
    if is_main_process():
        record_run(work, identity)
    try:
        yield
    except BaseException:
        latest = latest_checkpoint(work)
        if latest is not None:
            log.warning("training stopped; %s is kept: rerun the same command with --resume to continue", latest)
        elif is_main_process():
            shutil.rmtree(work, ignore_errors=True)
        raise


def is_main_process() -> bool:
    """Before the Trainer exists: rank 0 of an `accelerate launch` (or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def _checkpoint_step(checkpoint: Path | None) -> int | None:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else None


def _trained_model(trainer: Any, lora: bool, precision: Precision, work: Path) -> Any:
    """The trained weights as one plain model on the main process (None elsewhere under sharding).

    Unsharded (one process, DDP): the model in memory, LoRA merged. Under FSDP
    or ZeRO-3 no process holds the whole model, so the Trainer's `save_model`
    (which gathers the full state dict: every process must call it) writes
    it, or the adapter, to `work/final`, and the main process loads it back
    in the training dtype, merging an adapter onto its base.
    """
    if not (getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)):
        model = trainer.model
        return model.merge_and_unload() if lora else model  # merged: hf:OUT loads without peft
    staging = work / "final"
    trainer.save_model(str(staging))
    if not trainer.is_world_process_zero():
        return None
    model, _ = load_hf_causal_lm(str(staging), dtype=precision.torch_dtype())
    return model


def _weights_dtype(model: Any) -> str:
    """The dtype of the weights (all share one after loading and merging); config.json is set to match."""
    dtype = next(model.parameters()).dtype
    model.config.dtype = dtype
    return str(dtype).removeprefix("torch.")


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
