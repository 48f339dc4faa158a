"""Which number format `oec train` trains and saves in, decided once from `--precision` and the hardware.

Why a table of its own: three choices hang together and are easy to get
half right. The dtype the weights are loaded in is the dtype they are trained
and saved in; the Trainer's `bf16`/`fp16` flags only turn on autocast.

- fp32: fp32 weights, no autocast (the CPU default: exact and not slower there).
- bf16: bf16 weights (a full fine-tune keeps weights and optimizer state in
  bf16, half the memory of fp32) with bf16 autocast. With LoRA the frozen
  base is bf16 and peft keeps the adapter in fp32; the merged checkpoint is
  bf16, the base's dtype.
- fp16: fp32 master weights with fp16 autocast and a loss scaler (fp16 weights
  cannot take optimizer updates without overflowing), so the checkpoint is fp32.

`auto` picks bf16 on a GPU that supports it, fp16 on an older CUDA GPU, fp32 on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: what to load the weights in and which autocast the Trainer turns on."""

    name: str  # bf16 | fp16 | fp32
    weights: str  # torch dtype name the weights are loaded, trained and saved in
    bf16_autocast: bool
    fp16_autocast: bool
    warning: str | None = None

    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.weights)


def _hardware() -> tuple[bool, bool]:
    import torch

    cuda = torch.cuda.is_available()
    return cuda, bool(cuda and torch.cuda.is_bf16_supported())


def resolve_precision(requested: str, *, cuda: bool | None = None, bf16_supported: bool | None = None) -> Precision:
    """`--precision` plus the hardware -> a Precision; impossible combinations raise ValueError saying why.

    `cuda`/`bf16_supported` default to what torch sees (tests pass them to
    check GPU decisions on a CPU machine).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"--precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    if cuda is None or bf16_supported is None:
        seen_cuda, seen_bf16 = _hardware()
        cuda = seen_cuda if cuda is None else cuda
        bf16_supported = seen_bf16 if bf16_supported is None else bf16_supported
    name = requested
    if requested == "auto":
        name = "bf16" if cuda and bf16_supported else "fp16" if cuda else "fp32"
    if name == "fp32":
        return Precision("fp32", "float32", bf16_autocast=False, fp16_autocast=False)
    if name == "fp16":
        if not cuda:
            raise ValueError("--precision fp16 needs a CUDA GPU (fp16 autocast with a loss scaler); "
                             "on CPU use fp32 (the default there) or bf16")
        return Precision("fp16", "float32", bf16_autocast=False, fp16_autocast=True)
    warning = None
    if cuda and not bf16_supported:
        raise ValueError("--precision bf16: this GPU does not support bfloat16; use fp16 or fp32 (or auto)")
    if not cuda:
        warning = ("--precision bf16 on CPU: weights and optimizer state in bfloat16 save memory but steps are "
                   "slower than fp32 and small updates can be lost; auto uses fp32 on CPU")
    return Precision("bf16", "bfloat16", bf16_autocast=True, fp16_autocast=False, warning=warning)
