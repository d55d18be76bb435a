"""Language-model pretraining: corpus cleaning and dedup, tokenizer, training, export, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mrirecon.pretrain.corpus import (
    Document,
    deduplicate,
    html_to_text,
    normalise,
    pod_to_text,
    read_corpus,
    split_of,
    write_corpus,
)
from mrirecon.pretrain.tokenizer import load_tokenizer, train_tokenizer

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog while the cat watches from the window sill.",
    "A database index makes lookups fast, but every insert must also update the index pages.",
    "Python functions are objects: they can be passed around, stored in lists and returned.",
    "The kernel schedules processes on the available processors according to their priority.",
]


# ------------------------------------------------------------------ corpus cleaning
def test_html_to_text_keeps_visible_text_only() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<div class='sphinxsidebar'>Navigation links</div><script>var x = 1;</script>"
        "<h1>Heading</h1><p>First   paragraph with <b>bold</b>&amp;entity.</p><pre>  code\n    indented</pre>"
        "<nav>menu</nav><p>Last</p></body></html>"
    )
    text = normalise(html_to_text(html))
    assert text.split("\n") == [
        "Heading",
        "",
        "First paragraph with bold&entity.",
        "",
        "  code",
        "    indented",
        "",
        "Last",
    ]
    for hidden in ("Navigation", "var x", "color", "menu"):
        assert hidden not in text


def test_pod_to_text_unwraps_codes() -> None:
    pod = "=head1 NAME\n\nperlfoo - use C<print> and L<perlfunc/open> with E<lt>STDINE<gt>\n\n=cut\n"
    assert pod_to_text(pod).split() == ["NAME", "perlfoo", "-", "use", "print", "and", "open", "with", "<STDIN>"]


def test_deduplicate_removes_exact_near_duplicates_and_boilerplate() -> None:
    body = "\n".join(PARAGRAPHS)
    footer = "Copyright the authors of this documentation, all rights reserved here."
    docs = [
        Document("s", f"d{i}", f"{body}\nUnique line number {i} that is long enough to count.\n{footer}")
        for i in range(3)
    ]
    docs.append(Document("s", "exact", docs[0].text.replace("  ", " ")))
    docs.append(Document("s", "other", "\n".join(p[::-1] for p in PARAGRAPHS) + f"\n{footer}"))
    kept, stats = deduplicate(docs, boilerplate_docs=5, near_dup=0.8)
    assert [d.path for d in kept] == ["d0", "other"]  # d1, d2 share 4 of 5 long lines with d0
    assert stats["near_duplicates"] == 2 and stats["exact_duplicates"] == 1
    assert stats["boilerplate_lines"] == 5 and all(footer not in d.text for d in kept)


def test_split_is_by_document_and_corpus_round_trips(tmp_path: Path) -> None:
    docs = [Document("src", f"doc{i}", PARAGRAPHS[i % 4] * 5) for i in range(200)]
    assert split_of(docs[7], 10.0) == split_of(Document("src", "doc7", "other text"), 10.0)
    counts = write_corpus(docs, 10.0, tmp_path / "c.jsonl.xz")
    assert (
        5 < counts["heldout"]["documents"] < 40 and counts["train"]["documents"] + counts["heldout"]["documents"] == 200
    )
    back = list(read_corpus(tmp_path / "c.jsonl.xz"))
    assert [r["text"] for r in back] == [d.text for d in docs]
    assert len(list(read_corpus(tmp_path / "c.jsonl.xz", "heldout"))) == counts["heldout"]["documents"]
    (tmp_path / "bad.xz").write_bytes(b"not xz")
    with pytest.raises(ValueError, match="bad.xz"):
        list(read_corpus(tmp_path / "bad.xz"))


# ------------------------------------------------------------------ tokenizer
def test_tokenizer_round_trips_any_text(tmp_path: Path) -> None:
    tok = train_tokenizer(PARAGRAPHS * 20, vocab_size=320)
    assert [tok.token_to_id(s) for s in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    tok.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path)
    for text in (PARAGRAPHS[0], "unseen: Zürich ∑ 日本語 \t tabs\n\nnewlines  ", ""):
        assert tok.decode(tok.encode(text).ids) == text
    assert len(tok.encode(PARAGRAPHS[1]).ids) < 0.75 * len(PARAGRAPHS[1])  # merges were learned


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory) -> dict[str, Path]:
    """A repeated-text corpus, its tokenizer and a tiny Nirvana config with the tokenizer's vocabulary."""
    root = tmp_path_factory.mktemp("pretrain")
    docs = [Document("src", f"doc{i}", "\n".join(PARAGRAPHS[i % 4 :] + PARAGRAPHS[: i % 4])) for i in range(60)]
    write_corpus(docs, 10.0, root / "corpus.jsonl.xz")
    tok = train_tokenizer((r["text"] for r in read_corpus(root / "corpus.jsonl.xz", "train")), vocab_size=320)
    tok.save(str(root / "tokenizer.json"))
    cfg = json.loads((Path(__file__).parents[1] / "backbone/tiny/config.json").read_text())
    cfg.update(
        vocab_size=tok.get_vocab_size(), hidden_size=64, num_heads=2, num_hidden_layers=3, concept_dim=16, logit_dim=8
    )
    (root / "config.json").write_text(json.dumps(cfg))
    return {"corpus": root / "corpus.jsonl.xz", "tokenizer": root / "tokenizer.json", "config": root / "config.json"}


def _fit(setup: dict[str, Path], out: Path, steps: int, *extra: str):
    from mrirecon.pretrain.cli import main

    args = [
        "fit",
        f"--model.config={setup['config']}",
        "--model.lr=0.01",
        "--model.warmup_steps=2",
        f"--data.corpus={setup['corpus']}",
        f"--data.tokenizer={setup['tokenizer']}",
        "--data.seq_len=32",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--data.heldout_tokens=256",
        f"--trainer.default_root_dir={out}",
        f"--trainer.max_steps={steps}",
        "--trainer.accelerator=cpu",
        "--trainer.logger=false",
        "--trainer.log_every_n_steps=1",
        "--trainer.val_check_interval=10",
        "--trainer.check_val_every_n_epoch=null",
        "--seed_everything=0",
        *extra,
    ]
    return main(args)


def test_pretraining_lowers_loss_and_exports_loadable_model(tiny_setup, tmp_path: Path) -> None:
    from mrirecon.codecs.backbones import build_backbone
    from mrirecon.nirvana import NirvanaForCausalLM

    cli = _fit(tiny_setup, tmp_path, 40)
    facts = json.loads((tmp_path / "model/pretraining.json").read_text())
    losses = [c["loss"] for c in facts["curve"]]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert facts["tokens_seen"] == 40 * 4 * 32 and facts["heldout"]["ppl"] < facts["baselines"]["unigram_ppl"]
    assert facts["heldout_curve"] and facts["baselines"]["bigram_ppl"] < facts["baselines"]["unigram_ppl"]
    assert (tmp_path / "model/tokenizer.json").is_file()

    trained = cli.model.lm.eval()
    loaded = NirvanaForCausalLM.from_pretrained(tmp_path / "model")
    assert all(
        torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
    ids = torch.randint(3, loaded.config.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.equal(trained(ids).logits, loaded(ids).logits)
    backbone = build_backbone("nirvana", weights=str(tmp_path / "model"))
    assert torch.equal(backbone.body.layers[-1].mixer.t_proj.weight, trained.model.layers[-1].mixer.t_proj.weight)


def test_resume_continues_exactly(tiny_setup, tmp_path: Path) -> None:
    """A run resumed from its step-4 checkpoint ends with the same weights as the uninterrupted run."""
    ckpt = (
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.every_n_train_steps=4",
        "--trainer.callbacks.save_top_k=-1",
        "--trainer.callbacks.save_last=true",
    )
    straight = _fit(tiny_setup, tmp_path / "a", 8, *ckpt).model
    saved = sorted((tmp_path / "a/checkpoints").glob("*.ckpt"))
    assert [p.name for p in saved] == ["epoch=0-step=4.ckpt", "epoch=0-step=8.ckpt", "last.ckpt"]
    resumed = _fit(tiny_setup, tmp_path / "b", 8, f"--ckpt_path={saved[0]}").model
    assert resumed.tokens_seen == straight.tokens_seen == 8 * 4 * 32
    assert [c["step"] for c in resumed.curve] == list(range(8))
    for k, v in straight.lm.state_dict().items():
        torch.testing.assert_close(resumed.lm.state_dict()[k], v, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("architecture", ["gated-deltanet", "transformer"])
def test_baseline_architectures_train_and_save(tiny_setup, tmp_path: Path, architecture: str) -> None:
    pytest.importorskip("transformers")
    cli = _fit(tiny_setup, tmp_path, 3, f"--model.architecture={architecture}")
    facts = json.loads((tmp_path / "model/pretraining.json").read_text())
    assert facts["architecture"] == architecture and facts["tokens_seen"] == 3 * 4 * 32
    nirvana = _fit(tiny_setup, tmp_path / "n", 1).model
    ratio = facts["non_embedding_parameters"] / sum(
        p.numel() for n, p in nirvana.lm.named_parameters() if "embed" not in n and not n.startswith("lm_head")
    )
    assert 0.6 < ratio < 1.5  # equal size within one layer's worth
    from mrirecon.pretrain.compare import main as compare

    assert compare([str(tmp_path), str(tmp_path / "n"), "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    assert f"| {architecture} |" in table and "| nirvana (Trigger token) |" in table and "bigram" in table
    assert "tokens seen differ" in table  # 3 steps against 1
    assert compare([str(tmp_path / "missing")]) == 1
    if architecture == "gated-deltanet":
        from mrirecon.nirvana import NirvanaForCausalLM

        loaded = NirvanaForCausalLM.from_pretrained(tmp_path / "model")
        assert loaded.model.num_trigger_layers == 0
        assert torch.equal(loaded.lm_head.weight, cli.model.lm.lm_head.weight)


def test_bf16_mixed_training_and_bf16_export(tiny_setup, tmp_path: Path) -> None:
    """The GPU recipe's precision settings (autocast bf16, bfloat16 export) on CPU."""
    from mrirecon.nirvana import NirvanaForCausalLM

    cli = _fit(tiny_setup, tmp_path, 4, "--trainer.precision=bf16-mixed", "--model.save_dtype=bfloat16")
    assert next(cli.model.lm.parameters()).dtype == torch.float32  # the trained copy keeps float32 masters
    loaded = NirvanaForCausalLM.from_pretrained(tmp_path / "model", dtype=torch.bfloat16)
    for k, v in cli.model.lm.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v.to(torch.bfloat16)), k


SHIPPED = Path(__file__).resolve().parents[1] / "backbone" / "small"


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file(), reason="the shipped pretrained backbone is absent")
def test_shipped_small_backbone_is_a_language_model() -> None:
    """backbone/small loads strictly and predicts technical English far better than a uniform guess over its
    8192 tokens (9.01 nats a token; it scores about 3.5 on this sentence)."""
    from mrirecon.nirvana import NirvanaForCausalLM

    record = json.loads((SHIPPED / "pretraining.json").read_text())
    lm = NirvanaForCausalLM.from_pretrained(SHIPPED, dtype=torch.float32)
    tokenizer = load_tokenizer(SHIPPED / "tokenizer.json")
    text = (
        "The function returns a list of the rows that match the query. If the table does not exist, "
        "an error is raised and the transaction is rolled back."
    )
    assert tokenizer.decode(tokenizer.encode(text).ids) == text
    ids = torch.tensor([tokenizer.encode(text).ids])
    with torch.no_grad():
        logits = lm(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
    assert record["heldout"]["ppl"] < record["baselines"]["bigram_ppl"]
    assert float(loss) < 5.0, float(loss)
