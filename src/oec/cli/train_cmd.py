"""`oec train`: fine-tune the student on exported SFT records (only flagged turns supervised)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from oec.cli.common import console, fail


def train_command(
    data: Path = typer.Option(..., "--data", help="SFT records (JSONL from `oec export --format messages`)"),
    model: str = typer.Option(..., "--model", help="hf:smollm2-135m or hf:/path/to/checkpoint"),
    out: Path = typer.Option(..., "--out", help="folder for the trained checkpoint (loads as hf:OUT)"),
    lora: bool = typer.Option(True, "--lora/--no-lora", help="LoRA (merged into OUT) or a full fine-tune"),
    epochs: float = typer.Option(1.0, "--epochs", help="passes over the data"),
    lr: float | None = typer.Option(None, "--lr", help="learning rate; default 2e-4 with LoRA, 1e-5 full"),
    max_length: int | None = typer.Option(
        None, "--max-length", help="tokens per example; default: the model's context. Longer records are cut "
                                   "into windows at turn boundaries (see --long-records), and counted"),
    long_records: str = typer.Option(
        "window", "--long-records", help="window: cut at turn boundaries, each window keeping the system prompt "
                                         "and task statement; drop: leave such records out whole (counted)"),
    student_format: str | None = typer.Option(
        None, "--student-format", help="text | native: check the data is in this format (it is recorded in OUT "
                                       "either way, and `oec eval hf:OUT` follows it)"),
    batch_size: int = typer.Option(1, "--batch-size", help="records per device per micro-batch"),
    grad_accum: int = typer.Option(4, "--grad-accum", help="micro-batches per optimizer step"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="stop after N optimizer steps"),
    seed: int = typer.Option(0, "--seed", help="seeds LoRA init, data order and dropout"),
    lora_r: int = typer.Option(16, "--lora-r", help="LoRA rank"),
    lora_alpha: int = typer.Option(32, "--lora-alpha", help="LoRA scaling numerator (scale = alpha / r)"),
    lora_dropout: float = typer.Option(0.0, "--lora-dropout", help="dropout on the LoRA branch"),
    precision: str = typer.Option(
        "auto", "--precision",
        help="auto|bf16|fp16|fp32; auto: bf16 on GPUs that support it, fp16 (fp32 master weights) on other "
             "CUDA GPUs, fp32 on CPU. OUT is saved in the dtype trained in"),
    warmup: float = typer.Option(0.0, "--warmup", help="learning-rate warmup: steps if >= 1, else a fraction"),
    lr_scheduler: str = typer.Option("linear", "--lr-scheduler", help="linear, cosine, constant, ... (transformers)"),
    save_steps: int | None = typer.Option(
        None, "--save-steps", help="checkpoint every N optimizer steps into OUT.work/ (for --resume)"),
    resume: bool = typer.Option(
        False, "--resume", help="continue from the latest checkpoint in OUT.work/ (same data and settings)"),
    gradient_checkpointing: bool = typer.Option(
        True, "--gradient-checkpointing/--no-gradient-checkpointing",
        help="recompute activations in the backward pass: less memory, slower steps"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT if it already holds files"),
) -> None:
    """Fine-tune a local model on SFT records, training only the assistant turns flagged `train`.

    Several GPUs: `accelerate launch --config_file "$(oec train-config fsdp)" --num_processes N -m oec train ...`
    (configs: ddp, fsdp, deepspeed_zero3; `oec train-config` lists them).
    """
    try:
        from oec.train.masking import SFTDataError, TemplateError
        from oec.train.trainer import TrainError, is_main_process, train
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise fail(f"training needs the hf extras (pip install -e '.[hf]'): {exc}") from exc
    try:
        summary = train(data, model, out, lora=lora, epochs=epochs, lr=lr, max_length=max_length,
                        batch_size=batch_size, grad_accum=grad_accum, seed=seed, max_steps=max_steps,
                        lora_r=lora_r, lora_alpha=lora_alpha, gradient_checkpointing=gradient_checkpointing,
                        overwrite=overwrite, lora_dropout=lora_dropout, precision=precision, warmup=warmup,
                        lr_scheduler=lr_scheduler, save_steps=save_steps, resume=resume,
                        long_records=long_records, student_format=student_format)
    except (SFTDataError, TemplateError, TrainError, OSError) as exc:
        raise fail(str(exc)) from exc
    except ImportError as exc:
        raise fail(f"training needs the hf extras (pip install -e '.[hf]'): {exc}") from exc
    if not is_main_process():  # under accelerate launch: one report, from the process that wrote OUT
        return

    hp = summary.hyperparameters
    table = Table(title=f"train ({'LoRA, merged' if hp['lora'] else 'full fine-tune'}, {summary.trainer} "
                        f"on {summary.device})")
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    rows = [
        ("records", summary.records),
        ("used", summary.records_used),
        ("student format", summary.student_format),
        ("max length (tokens)", summary.max_length),
        ("cut into windows (examples)", f"{summary.windowed_records} ({summary.examples} examples in all)"),
        ("trained turns longer than max length", summary.dropped_turns_too_long),
        ("dropped: longer than max length", summary.dropped_too_long),
        ("dropped: nothing to train", summary.dropped_nothing_to_train),
        ("dropped: tokens merged across turns", summary.dropped_token_boundary),
        ("supervised tokens", f"{summary.supervised_tokens} of {summary.total_tokens}"),
        ("longest record (tokens)", summary.longest_tokens),
        ("optimizer steps", summary.steps if summary.resumed_from_step is None
         else f"{summary.steps} (resumed at {summary.resumed_from_step})"),
        ("learning rate", f"{hp['lr']:g}"),
        ("precision (saved weights)", f"{hp['precision']} ({summary.weights_dtype or '-'})"),
        ("first / last loss", _first_last(summary.loss_curve)),
        ("seconds per step", summary.seconds_per_step if summary.seconds_per_step is not None else "-"),
        ("duration (s)", f"{summary.duration_s:.1f}"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    console.print(f"wrote the checkpoint to {out} (use it as --model hf:{out}); details in {out}/oec_train.json")


def _first_last(curve: list[dict[str, float]]) -> str:
    if not curve:
        return "-"
    return f"{curve[0]['loss']:.4f} / {curve[-1]['loss']:.4f}"


def train_config_command(
    name: str | None = typer.Argument(None, help="ddp, fsdp or deepspeed_zero3; none: list them"),
) -> None:
    """Print the path of an accelerate config shipped with oec, for `accelerate launch --config_file`."""
    from oec.train.launch import accelerate_config, accelerate_configs

    if name is None:
        for config_name, path in accelerate_configs().items():
            typer.echo(f"{config_name}\t{path}")
        return
    try:
        typer.echo(str(accelerate_config(name)))
    except KeyError as exc:
        raise fail(str(exc.args[0])) from exc
