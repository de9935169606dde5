"""The ``dallmi`` CLI on files: finetune -> adapt -> evaluate -> predict, and clear errors on bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dallmi_core.cli import app

runner = CliRunner()
PARAMS = ["-p", "epochs=1", "-p", "batch_size=16", "-p", "max_length=32"]


def test_cli_finetune_adapt_evaluate_predict(tiny_bert, pubmed, tmp_path):
    pubmed["source"].subset(range(32)).to_wide_csv(tmp_path / "source.csv")
    pubmed["target_train"].subset(range(48)).to_wide_csv(tmp_path / "target.csv")
    pubmed["target_test"].subset(range(24)).to_wide_csv(tmp_path / "test.csv")
    result = runner.invoke(app, ["finetune", str(tmp_path / "source.csv"), "--out", str(tmp_path / "src"),
                                 "--base", tiny_bert, *PARAMS])
    assert result.exit_code == 0, result.output
    assert "checkpoint:" in result.output
    result = runner.invoke(app, ["adapt", str(tmp_path / "target.csv"), "--base", str(tmp_path / "src" / "checkpoint"),
                                 "--out", str(tmp_path / "ad"), "--hide-ratio", "0.5", "--eval",
                                 str(tmp_path / "test.csv"), *PARAMS])
    assert result.exit_code == 0, result.output
    assert "mAP" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "ad" / "checkpoint"), str(tmp_path / "test.csv"),
                                 "--json", str(tmp_path / "report.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert 0 <= report["mAP"] <= 1 and len(report["per_label"]) == 14
    result = runner.invoke(app, ["predict", str(tmp_path / "ad" / "checkpoint"), "women with anaemia",
                                 "--top-k", "3"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["text"] == "women with anaemia" and len(line["scores"]) == 3


def test_cli_names_the_row_of_a_malformed_csv(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,A,B\n1,some text,1,0\n2,other text,1,2\n", encoding="utf-8")
    result = runner.invoke(app, ["finetune", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "row 2" in result.output and "'2'" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_rejects_unknown_training_parameter(tmp_path):
    good = tmp_path / "ok.csv"
    good.write_text("id,text,A\n1,some text,1\n", encoding="utf-8")
    result = runner.invoke(app, ["finetune", str(good), "--out", str(tmp_path / "o"), "-p", "epochz=1"])
    assert result.exit_code == 2
    assert "epochz" in result.output
