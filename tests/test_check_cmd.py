import json

from spike_lib.cli import main


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_check_numpy_json_reports_a_tiny_error(capsys):
    assert main(["check", "--backend", "numpy", "--json"]) == 0
    res = last_json(capsys)
    assert res["max_rel_err"] < 1e-6 and res["ok"] is True
    assert res["n_checked"] == res["n_params"] > 1000  # every entry of every tensor
    assert res["spiking"] is True and res["attention"] == "sdsa"


def test_check_the_softmax_twin_on_a_subset(capsys):
    assert main(["check", "--attention", "softmax", "--twin", "--max-entries", "5",
                 "--json"]) == 0
    res = last_json(capsys)
    assert res["spiking"] is False and res["max_rel_err"] < 1e-6 and res["n_checked"] < 200


def test_unknown_backend_is_a_clear_error(capsys):
    assert main(["check", "--backend", "mlx"]) == 2
    assert "--backend 'mlx' is not checked here yet" in capsys.readouterr().err
