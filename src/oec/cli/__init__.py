"""The `oec` command line (typer). Each subcommand lives in a module of its own."""

from __future__ import annotations

import typer

from oec import __version__
from oec.cli import collect, demo, grade, tasks
from oec.cli import eval_cmd, export_cmd, filter_cmd, run_cmd
from oec.cli import train_cmd
from oec.cli import shift_cmd, view_cmd
from oec.cli import criteria_cmd
from oec.cli import synth_cmd, experiment_cmd

app = typer.Typer(
    name="oec",
    help="Train multi-turn LM agents with on-policy expert corrections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(tasks.app, name="tasks")
app.command("grade")(grade.grade_command)
app.command("collect")(collect.collect_command)
app.command("demo")(demo.demo_command)
app.command("filter")(filter_cmd.filter_command)
app.command("export")(export_cmd.export_command)
app.command("train")(train_cmd.train_command)
app.command("train-config")(train_cmd.train_config_command)
app.command("eval")(eval_cmd.eval_command)
app.command("compare")(eval_cmd.compare_command)
app.command("run")(run_cmd.run_command)
app.command("view")(view_cmd.view_command)
app.command("shift")(shift_cmd.shift_command)
app.command("criteria")(criteria_cmd.criteria_command)
app.command("synth")(synth_cmd.synth_command)
app.command("synth-split")(synth_cmd.synth_split_command)
app.command("experiment")(experiment_cmd.experiment_command)


@app.command("version")
def version_command() -> None:
    """Print the oec version."""
    typer.echo(__version__)


def main() -> None:
    app()
