"""Loss-mask encoding of long trajectories: oec's encoder against the prefix-tokenizing baseline, same run.

The baseline is how masks were derived before (and how many SFT tools still do it): tokenize every prefix
of the conversation and take the differences, which grows with the square of the record's length. oec's
encoder renders each prefix as text once and tokenizes the whole record once (`oec.train.masking`). Both
run here on the same records, with SmolLM2's tokenizer and template; the ratio is baseline / oec.

    .venv/bin/python benchmarks/encode_long.py            # records of 20, 70 and 150 turns (about a minute)
    .venv/bin/python benchmarks/encode_long.py --turns 70
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from oec.data.records import SFTMessage, SFTRecord
from oec.models import smollm2
from oec.models.chat_format import render
from oec.train.masking import encode_record, encode_records, to_chat_messages


def trajectory(turns: int, observation_lines: int = 40) -> SFTRecord:
    """An OEC-shaped record: the student's half of the turns as context, the expert's half trained."""
    messages = [SFTMessage(role="system", content="You fix bugs with one bash block per turn."),
                SFTMessage(role="user", content="add(2, 3) returns -1. Fix it.")]
    for i in range(turns):
        expert = i >= turns // 2
        messages.append(SFTMessage(role="assistant", content=f"Step {i}.\n```bash\ncat f{i}.py\n```", train=expert,
                                   source="expert" if expert else "student"))
        if i < turns - 1:
            body = "\n".join(f"line {j} of f{i}.py: value = {i * j}" for j in range(observation_lines))
            messages.append(SFTMessage(role="user", content=f"OBSERVATION:\n{body}"))
    return SFTRecord(id=f"t{turns}", instance_id="x", strategy="oec", messages=messages)


def prefix_tokenizing_baseline(record: SFTRecord, tokenizer) -> int:
    """Tokenize every prefix (the old way); returns the token count, for a sanity check against oec's."""
    chat = to_chat_messages(record)
    texts = [render(tokenizer, chat[: i + 1], native=False, generation_prompt=False) for i in range(len(chat))]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return len(ids[-1])


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main(turns: list[int] = typer.Option([20, 70, 150], "--turns"),
         window: int = typer.Option(8192, "--window", help="max_length for the windowed encoding")) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2.smollm2_checkpoint()), local_files_only=True)
    table = Table(title="loss-mask encoding of one record (seconds)")
    for column in ("turns", "tokens", "baseline (every prefix tokenized)", "oec", "ratio", f"oec, windows of {window}",
                   "windows"):
        table.add_column(column, justify="right")
    for n in turns:
        record = trajectory(n)
        base_s, base_tokens = timed(lambda: prefix_tokenizing_baseline(record, tokenizer))
        oec_s, example = timed(lambda: encode_record(record, tokenizer, 10**8))
        assert example is not None and len(example) == base_tokens, "the two encodings disagree on the tokens"
        win_s, windows = timed(lambda: encode_records([record], tokenizer, window))
        table.add_row(str(n), str(base_tokens), f"{base_s:.2f}", f"{oec_s:.2f}", f"{base_s / oec_s:.1f}x",
                      f"{win_s:.2f}", str(len(windows.examples)))
    Console().print(table)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    typer.run(main)
