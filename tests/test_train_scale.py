"""`oec train` at scale: precision and saved dtype, gradient checkpointing, checkpoints and --resume,
the pipeline's per-mode defaults, the shipped accelerate configs, and a real 2-process run.

Training runs use test_train's tiny random Llama (2 layers, hidden 64), so each takes seconds on CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from test_train import oec_record, tiny_model, tokenizer, write_records  # noqa: F401 - fixtures

from oec.pipeline.config import DEFAULT_CONFIG, TrainSection, load_config
from oec.train.checkpoints import RUN_FILE, work_dir
from oec.train.precision import resolve_precision
from oec.train.trainer import SUMMARY_FILE, TrainError, train

RECORDS = [oec_record("a"), oec_record("b", expert_2="```bash\nls -la\n```"), oec_record("c", expert_1="ok")]


def saved_dtypes(folder: Path) -> tuple[set[str], str | None]:
    """(dtypes of the tensors in model.safetensors, the dtype config.json declares)."""
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        dtypes = {str(handle.get_tensor(k).dtype).removeprefix("torch.") for k in handle.keys()}
    config = json.loads((folder / "config.json").read_text())
    return dtypes, config.get("dtype", config.get("torch_dtype"))


# -- precision ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("requested", "cuda", "bf16", "name", "weights"), [
    ("auto", False, False, "fp32", "float32"),
    ("auto", True, True, "bf16", "bfloat16"),
    ("auto", True, False, "fp16", "float32"),  # fp32 master weights under fp16 autocast
    ("fp32", True, True, "fp32", "float32"),
    ("bf16", True, True, "bf16", "bfloat16"),
    ("fp16", True, True, "fp16", "float32"),
])
def test_precision_choice(requested: str, cuda: bool, bf16: bool, name: str, weights: str) -> None:
    chosen = resolve_precision(requested, cuda=cuda, bf16_supported=bf16)
    assert (chosen.name, chosen.weights, chosen.warning) == (name, weights, None)
    assert chosen.bf16_autocast == (name == "bf16") and chosen.fp16_autocast == (name == "fp16")


def test_impossible_precisions_are_refused_and_bf16_on_cpu_warns() -> None:
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False, bf16_supported=False)
    with pytest.raises(ValueError, match="does not support bfloat16"):
        resolve_precision("bf16", cuda=True, bf16_supported=False)
    with pytest.raises(ValueError, match="choose one of auto, bf16, fp16, fp32"):
        resolve_precision("fp8", cuda=False, bf16_supported=False)
    on_cpu = resolve_precision("bf16", cuda=False, bf16_supported=False)
    assert on_cpu.weights == "bfloat16" and "bf16 on CPU" in on_cpu.warning


def test_cpu_default_is_fp32_saved_as_fp32(tmp_path: Path, tiny_model: Path) -> None:
    data = write_records(tmp_path / "d.jsonl", RECORDS[:1])
    summary = train(data, f"hf:{tiny_model}", tmp_path / "out", lora=False, max_steps=1, grad_accum=1)
    assert summary.hyperparameters["precision"] == "fp32" and summary.weights_dtype == "float32"
    assert saved_dtypes(tmp_path / "out") == ({"float32"}, "float32")
    assert json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())["hyperparameters"]["precision"] == "fp32"


@pytest.mark.parametrize("lora", [True, False], ids=["lora-merged", "full"])
def test_bf16_on_cpu_is_honoured_with_a_warning_and_saved_as_bf16(tmp_path: Path, tiny_model: Path, lora: bool,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    data = write_records(tmp_path / "d.jsonl", RECORDS[:1])
    with caplog.at_level("WARNING", logger="oec.train.trainer"):
        summary = train(data, f"hf:{tiny_model}", tmp_path / "out", lora=lora, precision="bf16", max_steps=2,
                        grad_accum=1, lr=1e-2)
    assert "bf16 on CPU" in caplog.text
    assert summary.hyperparameters["precision"] == "bf16" and summary.weights_dtype == "bfloat16"
    assert saved_dtypes(tmp_path / "out") == ({"bfloat16"}, "bfloat16")  # LoRA merged: the base's dtype
    assert all(p["loss"] == p["loss"] for p in summary.loss_curve)  # no NaN


def test_fp16_on_cpu_fails_before_loading(tmp_path: Path) -> None:
    data = write_records(tmp_path / "d.jsonl", RECORDS[:1])
    with pytest.raises(TrainError, match="fp16 needs a CUDA GPU"):
        train(data, "hf:/nonexistent/model", tmp_path / "out", precision="fp16")
    with pytest.raises(TrainError, match="--lr-scheduler 'cosinus': choose one of linear, cosine"):
        train(data, "hf:/nonexistent/model", tmp_path / "out", lr_scheduler="cosinus")


# -- gradient checkpointing ----------------------------------------------------------------------


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_gradient_checkpointing_recomputes_the_layers(tmp_path: Path, tiny_model: Path, lora: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpointing shows as each layer's MLP running twice per micro-batch (forward, then in backward).

    (The MLP, not the decoder layer: transformers checkpoints the layer by wrapping its `forward`.)
    """
    from transformers.models.llama.modeling_llama import LlamaMLP

    calls = []
    forward = LlamaMLP.forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(LlamaMLP, "forward", counted)
    data = write_records(tmp_path / "d.jsonl", RECORDS[:1])
    counts = {}
    for checkpointing in (False, True):
        calls.clear()
        train(data, f"hf:{tiny_model}", tmp_path / f"o{checkpointing}", lora=lora, max_steps=1, grad_accum=1,
              gradient_checkpointing=checkpointing)
        counts[checkpointing] = len(calls)
    assert counts == {False: 2, True: 4}  # 2 layers, 1 micro-batch


# -- checkpoints and --resume --------------------------------------------------------------------


class Killed(Exception):
    """Stands for the process being killed in the middle of a step."""


def kill_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make training die when it starts optimizer step `step + 1` (after checkpoint-`step` is written)."""
    from trl import SFTTrainer

    original = SFTTrainer.training_step

    def dying(self, *args, **kwargs):
        if self.state.global_step == step:
            raise Killed(f"killed at step {step}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SFTTrainer, "training_step", dying)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_a_killed_run_resumes_to_the_same_end(tmp_path: Path, tiny_model: Path, lora: bool,
                                              monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    data = write_records(tmp_path / "d.jsonl", RECORDS)  # 3 records, 4 steps: resumes across an epoch boundary
    common = {"lora": lora, "lr": 1e-2 if lora else 3e-3, "max_steps": 4, "grad_accum": 1, "seed": 3,
              "save_steps": 1}
    whole = train(data, f"hf:{tiny_model}", tmp_path / "whole", **common)
    assert whole.steps == 4 and not work_dir(tmp_path / "whole").exists()  # removed once OUT is written

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        kill_at_step(patch, 2)
        with pytest.raises(Killed), caplog.at_level("WARNING", logger="oec.train.trainer"):
            train(data, f"hf:{tiny_model}", out, **common)
    work = work_dir(out)
    assert not out.exists() and sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert "checkpoint-2 is kept: rerun the same command with --resume" in caplog.text

    with pytest.raises(TrainError, match="interrupted run .*checkpoint-2.*--resume.*--overwrite"):
        train(data, f"hf:{tiny_model}", out, **common)
    with pytest.raises(TrainError, match="different run: lr: was"):
        train(data, f"hf:{tiny_model}", out, **{**common, "lr": 1e-3}, resume=True)
    changed = write_records(tmp_path / "d2.jsonl", RECORDS[:2])
    with pytest.raises(TrainError, match="data file content changed"):
        train(changed, f"hf:{tiny_model}", out, **common, resume=True)

    resumed = train(data, f"hf:{tiny_model}", out, **{**common, "save_steps": 3}, resume=True,
                    gradient_checkpointing=False)  # how checkpoints are taken may change; what is trained not
    assert resumed.steps == 4 and resumed.resumed_from_step == 2
    assert [p["step"] for p in resumed.loss_curve] == [1, 2, 3, 4]  # the interrupted run's log, continued
    assert [p["loss"] for p in resumed.loss_curve] == pytest.approx([p["loss"] for p in whole.loss_curve],
                                                                    rel=1e-4)
    assert not work.exists() and json.loads((out / SUMMARY_FILE).read_text())["resumed_from_step"] == 2


def test_resume_without_checkpoints_starts_fresh_and_a_failed_start_leaves_no_work_folder(
        tmp_path: Path, tiny_model: Path) -> None:
    data = write_records(tmp_path / "d.jsonl", RECORDS[:1])
    summary = train(data, f"hf:{tiny_model}", tmp_path / "out", max_steps=1, grad_accum=1, resume=True)
    assert summary.steps == 1 and summary.resumed_from_step is None
    with pytest.raises(TrainError, match="nothing to train"):
        train(data, f"hf:{tiny_model}", tmp_path / "short", max_length=8)
    assert not work_dir(tmp_path / "short").exists() and not (tmp_path / "short").exists()


def test_cli_passes_the_scale_options(tmp_path: Path, tiny_model: Path) -> None:
    from typer.testing import CliRunner

    from oec.cli import app

    data = write_records(tmp_path / "d.jsonl", RECORDS[:1])
    out = tmp_path / "ckpt"
    result = CliRunner().invoke(app, [
        "train", "--data", str(data), "--model", f"hf:{tiny_model}", "--out", str(out), "--max-steps", "2",
        "--grad-accum", "1", "--precision", "fp32", "--no-gradient-checkpointing", "--lora-r", "4",
        "--lora-alpha", "8", "--lora-dropout", "0.1", "--warmup", "0.5", "--lr-scheduler", "cosine",
        "--save-steps", "1"])
    assert result.exit_code == 0, result.output
    assert "fp32 (float32)" in result.output
    hp = json.loads((out / SUMMARY_FILE).read_text())["hyperparameters"]
    assert (hp["lora_r"], hp["lora_alpha"], hp["lora_dropout"], hp["warmup"], hp["lr_scheduler"]) == (
        4, 8, 0.1, 0.5, "cosine")
    assert hp["gradient_checkpointing"] is False and hp["save_steps"] == 1 and hp["precision"] == "fp32"


# -- pipeline config ------------------------------------------------------------------------------


def test_config_lr_defaults_per_mode(tmp_path: Path) -> None:
    from oec.train.trainer import DEFAULT_LR_FULL, DEFAULT_LR_LORA

    default = load_config(DEFAULT_CONFIG).train
    assert default.lora and default.lr is None and default.precision == "auto"  # the demo: LoRA at 2e-4
    full = tmp_path / "full.toml"
    full.write_text("[train]\nlora = false\nprecision = 'bf16'\nsave_steps = 50\nresume = true\n")
    section = load_config(full).train
    assert section.lr is None and section.resume and section.save_steps == 50
    assert (DEFAULT_LR_LORA, DEFAULT_LR_FULL) == (2e-4, 1e-5)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nprecision = 'fp8'\n")
    with pytest.raises(ValueError, match="train.precision"):
        load_config(bad)


def test_a_full_fine_tune_without_lr_gets_1e_5(tmp_path: Path, tiny_model: Path) -> None:
    data = write_records(tmp_path / "d.jsonl", RECORDS[:1])
    summary = train(data, f"hf:{tiny_model}", tmp_path / "out", lora=False, lr=TrainSection().lr, max_steps=1,
                    grad_accum=1)
    assert summary.hyperparameters["lr"] == 1e-5


def test_every_train_setting_of_the_config_reaches_train(tmp_path: Path, monkeypatch) -> None:
    """The pipeline's train stage passes each [train] field to train() by name, with the config's value."""
    import inspect
    import types

    from rich.console import Console

    from oec.pipeline import run
    from oec.pipeline.config import PipelineConfig
    from oec.train import trainer

    parameters = inspect.signature(train).parameters
    assert all(name in parameters for name in TrainSection.model_fields)
    seen: dict = {}

    def fake_train(data, model, out, **kwargs):
        seen.update(kwargs)
        return types.SimpleNamespace(records_used=1, examples=1, supervised_tokens=1, windowed_records=0,
                                     dropped_too_long=0)

    monkeypatch.setattr(trainer, "train", fake_train)
    config = PipelineConfig.model_validate({"train": {"lora": False, "lr": 3e-5, "max_length": 777, "warmup": 2,
                                                      "long_records": "drop", "save_steps": 5, "lora_r": 4}})
    sft = tmp_path / "sft.jsonl"
    sft.write_text("{}\n")
    run._train(config, sft, tmp_path, tmp_path, Console(file=open(os.devnull, "w")))
    for name in TrainSection.model_fields:
        assert seen[name] == getattr(config.train, name), f"the pipeline does not pass train.{name}"


# -- accelerate ----------------------------------------------------------------------------------


def test_shipped_accelerate_configs_parse_with_accelerate() -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    from oec.train.launch import accelerate_config, accelerate_configs

    configs = accelerate_configs()
    assert set(configs) == {"ddp", "fsdp", "deepspeed_zero3"}
    loaded = {name: load_config_from_file(str(path)) for name, path in configs.items()}
    assert {name: c.distributed_type.value for name, c in loaded.items()} == {
        "ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero3": "DEEPSPEED"}
    assert all(c.mixed_precision == "no" for c in loaded.values())  # --precision decides, not the config
    assert loaded["fsdp"].fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert loaded["deepspeed_zero3"].deepspeed_config["zero_stage"] == 3
    assert loaded["deepspeed_zero3"].deepspeed_config["zero3_save_16bit_model"] is True
    args = launch_command_parser().parse_args(
        ["--config_file", str(accelerate_config("fsdp")), "-m", "oec", "train", "--help"])
    assert args.module and args.training_script == "oec"
    with pytest.raises(KeyError, match="shipped: ddp, deepspeed_zero3, fsdp"):
        accelerate_config("zero2")


def test_train_config_command_prints_a_path() -> None:
    from typer.testing import CliRunner

    from oec.cli import app

    result = CliRunner().invoke(app, ["train-config", "fsdp"])
    assert result.exit_code == 0 and Path(result.output.strip()).is_file()
    assert "accelerate launch" in CliRunner().invoke(app, ["train", "--help"]).output


@pytest.mark.slow
def test_two_process_data_parallel_run_on_cpu(tmp_path: Path, tiny_model: Path) -> None:
    """A real `accelerate launch` of `oec train` with 2 processes (gloo DDP on CPU): one OUT, one report."""
    data = write_records(tmp_path / "d.jsonl", RECORDS + [oec_record("d")])
    out = tmp_path / "out"
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29571", "-m", "oec", "train",
         "--data", str(data), "--model", f"hf:{tiny_model}", "--out", str(out), "--no-lora", "--max-steps", "2",
         "--grad-accum", "1", "--save-steps", "1"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    written = json.loads((out / SUMMARY_FILE).read_text())
    assert written["steps"] == 2
    assert written["loss_curve"][0]["epoch"] == 0.5  # 4 records, 2 processes x batch 1: half an epoch a step
    assert result.stdout.count("wrote the checkpoint") == 1  # only the main process reports
    assert not work_dir(out).exists() and not (out / RUN_FILE).exists()
