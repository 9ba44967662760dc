"""The rule of hf-stack-too-old: transformers/accelerate/peft below the 4-bit floors
(compat-facts D; S25, S28, S29; plans/huggingface.toml)."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding
from ..knowledge import HfRule, Knowledge
from ..view import View, public
from .registry import Context, rule, ruled_out

# The features a QLoRA job needs (plans/huggingface.toml `feature`); 4-bit saving, moving and
# quant_storage are needs of some jobs only, and 8-bit merges are not 4-bit at all.
HF_FEATURES = ("4bit-load", "kbit-training")


def _applies(view: View, hf: HfRule) -> bool:
    """The floor's ``when`` conditions on the other packages hold (all known and inside)."""
    for other, spec in hf.when.items():
        ov = view.package(other)
        if ov is None or public(ov) not in spec:
            return False
    return True


@rule("hf-stack-too-old")
def hf_stack_too_old(ctx: Context) -> Iterator[Finding]:
    view = ctx.view
    for hf in ctx.kb.hf:
        if hf.feature not in HF_FEATURES:
            continue
        have = view.package(hf.package)
        if have is None or not _applies(view, hf) or public(have) >= hf.minimum:
            continue
        yield ctx.finding(
            "hf-stack-too-old",
            f"{hf.package} {have} is below {hf.minimum}: {hf.reason}",
            package=hf.package,
            installed=str(have),
            minimum=str(hf.minimum),
            when={k: str(s) for k, s in hf.when.items()},
        )


@ruled_out("hf-stack-too-old")
def _hf_known(view: View, kb: Knowledge) -> bool:
    # the floors were checked against known versions and did not fire
    return view.package("transformers") is not None and view.package("accelerate") is not None
