"""`ablate study` and `ablate report` on the command line."""

from ablate.cli import main
from ablate.study.runner import run_study
from study_fakes import fake_run, quiet_console


def test_study_list_shows_the_project_studies(project, capsys):
    assert main(["study", "list"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "linear, mlp2" in out and "LLaVA-1.5" in out


def test_paper_scale_without_checkpoints_names_them_and_suggests_tiny(project, capsys):
    assert main(["study", "demo", "--scale", "paper", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "lmsys/vicuna-13b-v1.3" in err and "ablate study demo --scale tiny" in err
    assert not (project / "runs" / "studies" / "demo-paper").exists()  # checked before anything is created


def test_unknown_study_suggests_a_name(project, capsys):
    assert main(["study", "dmeo"]) == 2
    assert "Did you mean 'demo'" in capsys.readouterr().err


def test_report_command_prints_the_tables(project, capsys):
    run_study("demo", scale="tiny", run_fn=fake_run, console=quiet_console())
    capsys.readouterr()
    assert main(["report", "demo", "--scale", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "# Study `demo` (tiny scale)" in out and "| linear (baseline) | 2 |" in out
    assert "runs/studies/demo-tiny/report.md" in out
