import json
import subprocess
import sys

from spike_lib.cli import COMMANDS, main


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "spike_lib", *args], capture_output=True,
                          text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_help_lists_every_command():
    code, out, _ = run_cli("--help")
    assert code == 0
    for name in COMMANDS:
        assert name in out


def test_info_json_is_the_last_line(monkeypatch):
    code, out, _ = run_cli("info", "--json")
    assert code == 0
    info = json.loads(out.strip().splitlines()[-1])
    assert info["spike_lib"] == "0.1.0" and "numpy" in info


def test_energy_json_numbers(capsys):
    assert main(["energy", "--flops", "1e6", "--num-steps", "4", "--rate", "0.1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ann_pj"] == 4.6e6
    assert abs(result["snn_pj"] - 3.6e5) < 1e-6
    assert abs(result["ratio"] - 3.6e5 / 4.6e6) < 1e-12


def test_bad_input_is_a_clear_error_not_a_traceback(capsys):
    assert main(["energy", "--flops", "1e6", "--rate", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "firing_rate=1.5 is invalid: allowed range is [0.0, 1.0]" in err
    assert "Traceback" not in err


def test_human_output_is_key_value(capsys):
    assert main(["energy", "--flops", "100", "--rate", "0.5", "--num-steps", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ann_pj", "460"] and lines[1].split() == ["snn_pj", "90"]
