"""Flowchart design: list of stages <-> Config, the parameter formula, refused designs, drawing."""

import matplotlib.pyplot as plt
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl.context_attention import NAMES as NUMPY_NAMES
from spike_lib.ui.flowchart import config_to_design, count_params, design_to_config, draw_flowchart
from spike_lib.numpy_impl.model import SpikeLLM

BOOK = [{"type": "embedding", "vocab_size": 2439, "block_size": 128, "n_embd": 256},
        {"type": "encoding", "num_steps": 2},
        {"type": "block", "attention": "sdsa", "n_head": 4, "d_ff": 1024, "repeat": 4},
        {"type": "readout"}]


def test_the_book_design_is_the_book_config():
    assert design_to_config(BOOK) == Config.book(vocab_size=2439)
    assert count_params(design_to_config(BOOK)) == 4_441_088  # the 4.4 M of Config.book()


def test_unrepeated_blocks_count_as_layers_and_extra_fields_pass_through():
    design = [BOOK[0], *[{"type": "block", "n_head": 4, "d_ff": 64}] * 3,
              {"type": "readout", "tie_weights": True}]
    cfg = design_to_config(design, seed=5)
    assert (cfg.n_layer, cfg.num_steps, cfg.tie_weights, cfg.seed) == (3, 4, True, 5)


@pytest.mark.parametrize("cfg", [
    Config.tiny(), Config.small(), Config.book(tie_weights=True),
    Config.tiny(attention="softmax", spiking=False, n_layer=3, dropout=0.1),
    Config.tiny(mem_clamp=4.0, in_threshold=0.5, reset="zero", surrogate="sigmoid"),
])
def test_config_design_round_trip_and_parameter_formula(cfg):
    design = config_to_design(cfg)
    assert [s["type"] for s in design] == ["embedding", "encoding", "block", "readout"]
    assert design[2]["repeat"] == cfg.n_layer
    assert design_to_config(design) == cfg
    assert count_params(cfg) == SpikeLLM(cfg).num_params()


def test_design_shows_only_what_differs_from_the_defaults():
    design = config_to_design(Config.tiny(beta=0.75))
    assert design[2] == {"type": "block", "attention": "sdsa", "n_head": 2, "d_ff": 64,
                         "neuron": "lif", "beta": 0.75, "repeat": 1}
    assert design[3] == {"type": "readout"}


@pytest.mark.parametrize("design, pattern", [
    ([], "non-empty list of stages in the order embedding"),
    ([BOOK[2], BOOK[3]], r"design\[0\] is a 'block' stage where embedding must come"),
    ([BOOK[0], BOOK[3]], r"design\[1\] is a 'readout' stage where encoding or block must come"),
    ([BOOK[0], BOOK[2]], "ends with a 'block' stage: add a readout"),
    ([BOOK[0], BOOK[2], BOOK[1], BOOK[3]],
     r"design\[2\] is a 'encoding' stage where block or readout must come"),
    ([BOOK[0], {"type": "conv"}, BOOK[3]], r"design\[1\]: type 'conv' is not a SpikeLLM stage"),
    ([BOOK[0], {"type": "block", "n_embd": 64}, BOOK[3]],
     r"design\[1\] \(block\): 'n_embd' is not a block setting \(n_embd belongs to the embedding"),
    ([BOOK[0], {"type": "block", "heads": 4}, BOOK[3]], "Config has no field 'heads'"),
    ([BOOK[0], {"type": "block", "d_ff": 1024}, {"type": "block", "d_ff": 512}, BOOK[3]],
     r"design\[2\] \(block\): d_ff=512 differs from design\[1\]'s d_ff=1024: SpikeLLM"),
    ([BOOK[0], {"type": "block", "attention": "softmax"}, {"type": "block"}, BOOK[3]],
     "attention='default' differs from design\\[1\\]'s attention='softmax'"),
    ([BOOK[0], {"type": "block", "repeat": 0}, BOOK[3]], r"design\[1\] repeat=0 is invalid"),
    ([BOOK[0], {"type": "encoding", "num_steps": 2, "repeat": 2}, BOOK[2], BOOK[3]],
     "only blocks repeat"),
    ([BOOK[0], {"type": "block", "n_head": 3}, BOOK[3]],
     "n_embd=256 is invalid: it must be divisible by n_head=3"),
    (["embedding"], r"design\[0\] = 'embedding' is invalid: each stage is a dict"),
])
def test_designs_the_model_cannot_express_are_refused(design, pattern):
    with pytest.raises(ValueError, match=pattern):
        design_to_config(design)


def test_extra_fields_clash_or_unknown():
    with pytest.raises(ValueError, match=r"extra fields \['n_embd'\] are invalid"):
        design_to_config(BOOK, n_embd=64)
    with pytest.raises(ValueError, match=r"extra fields \['colour'\] are invalid"):
        design_to_config(BOOK, colour="red")


def test_plugin_attention_has_no_formula():
    cfg = Config.tiny()
    object.__setattr__(cfg, "attention", "mean_mixer")  # as if a plug-in were registered
    with pytest.raises(ValueError, match="count_params knows the library.*mean_mixer.*num_params"):
        count_params(cfg)


def test_draw_one_box_per_stage_and_the_count_in_the_title():
    fig = draw_flowchart(BOOK)
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert "4,441,088 parameters" in ax.get_title()
    texts = [t.get_text() for t in ax.texts]
    assert "block x4\nLN, LIF, SDSA\n4 heads (+)\nLN, LIF, MLP 1024 (+)" in texts
    assert texts.count("(T, B, L, D)") == 2
    plt.close(fig)
    fig = draw_flowchart([BOOK[0], *[{"type": "block", "n_head": 4}] * 3, BOOK[3]])
    assert len(fig.axes[0].patches) == 3  # the three equal blocks drawn as one box x3
    plt.close(fig)


def test_stage_editor_add_remove_and_move_give_validated_configs():
    from spike_lib.ui.flowchart import StageEditor

    ed = StageEditor(BOOK)
    assert ed.config() == Config.book(vocab_size=2439)
    ed.add_block()  # a copy of the block, without its repeat: one more layer
    assert [s["type"] for s in ed.design] == ["embedding", "encoding", "block", "block", "readout"]
    assert ed.config().n_layer == 5 and ed.status() == f"valid: n_layer=5, {count_params(ed.config()):,} parameters"
    ed.move(4, -1)  # the readout before the last block: refused with the order
    assert ed.status().startswith("design[4] is a 'block' stage after the readout: the readout must be the last")
    ed.move(3, 1)
    assert ed.config().n_layer == 5
    ed.set(3, d_ff=512)  # blocks that differ cannot be built
    assert "d_ff=512 differs from design[2]'s d_ff=1024" in ed.status()
    ed.remove(3)
    assert ed.config() == Config.book(vocab_size=2439)
    ed.set(1, num_steps=None)  # None removes a setting: back to Config()'s default
    assert ed.config().num_steps == Config().num_steps
    with pytest.raises(ValueError, match="stage 9 does not exist"):
        ed.remove(9)


def test_stage_editor_html_is_readable_and_shows_errors():
    from spike_lib.ui.flowchart import StageEditor

    page = StageEditor(BOOK).html()
    assert "4,441,088 parameters" in page and "V=2439, L=128, D=256" in page
    assert "font-size" not in page.replace("font-size:1.3em", "")  # page-sized text, no tiny fonts
    bad = StageEditor(BOOK).set(2, n_head=5).html()
    assert "&#9888;" in bad and "divisible by n_head=5" in bad


def test_stage_editor_widget_redraws_after_a_click():
    pytest.importorskip("ipywidgets")
    from spike_lib.ui.flowchart import StageEditor

    ed = StageEditor(cfg=Config.tiny())
    box = ed.widget()
    n_rows = len(box.children)
    box.children[-2].click()  # "add block"
    assert len(box.children) == n_rows + 1 and ed.config().n_layer == 2
    assert "n_layer=2" in box.children[-1].value


def test_token_shift_attentions_add_two_vectors_per_block():
    for attention in ("spike_matrix_shift", "softmax_shift"):
        cfg = Config.tiny(attention=attention)
        assert count_params(cfg) == SpikeLLM(cfg).num_params()
        assert count_params(cfg) - count_params(Config.tiny()) == 2 * cfg.n_embd * cfg.n_layer


@pytest.mark.parametrize("attention", ["sdsa", "softmax", *sorted(NUMPY_NAMES)])
def test_every_library_attention_has_its_formula(attention):
    # Eq. 10.6 with the attention's own vectors and per-head numbers, at two widths and head counts
    for d, h in ((16, 2), (32, 4)):
        cfg = Config.tiny(n_layer=2, n_embd=d, n_head=h, d_ff=24, vocab_size=30, attention=attention)
        assert count_params(cfg) == SpikeLLM(cfg).num_params()


def test_the_leak_adds_one_number_per_head_and_block():
    cfg = Config.tiny(attention="spike_matrix_decay_shift")
    shift = Config.tiny(attention="spike_matrix_shift")
    assert count_params(cfg) - count_params(shift) == cfg.n_head * cfg.n_layer
