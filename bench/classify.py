"""Score the reply classifier on the labelled replies: per-intent precision, recall, F1 and a confusion matrix.

Reads ``bench/data/replies.jsonl`` (EN and ES replies with the hard cases: dates in many shapes,
deferrals to a quarter, referrals with an address, sarcasm, quoted history, signatures) and
scores, side by side, the opt-out word classifier of ``libs.optout`` mapped onto intents (the
baseline) and the local classifier, on each part of the set (``dev``: the rules were tuned on
it; ``holdout``, ``final``, ``blind`` to ``blind5``: each written apart and scored once before the fixes it
prompted) and on all of it.
``--openai URL`` also scores the OpenAI path against that OpenAI-compatible endpoint (key
from ``SDR_OPENAI_API_KEY``).

    uv run python bench/classify.py
    uv run python bench/classify.py --misses          # list what the local classifier got wrong (dev)
    uv run python bench/classify.py --openai https://api.openai.com/v1 --model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path, and bench/gateway.py would shadow gateway/.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench"))]

from libs.replies.classify import ClassifierSettings, classify_reply  # noqa: E402
from libs.replies.evaluate import DATA, Case, baseline, load, render, score  # noqa: E402
from libs.replies.intents import ReplyClassification  # noqa: E402
from libs.replies.local import classify_local  # noqa: E402
from libs.replies.openai_classifier import make_client  # noqa: E402


def local(case: Case) -> ReplyClassification:
    """The entry without a key: opt-out words, then the local rules."""
    return classify_reply(case.text, received_at=case.received_at).result


def main() -> None:
    """Print the baseline's and the local classifier's scores (and the model's with ``--openai``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--openai", metavar="URL", help="OpenAI-compatible base URL to score the model path too")
    parser.add_argument("--model", default=ClassifierSettings().openai_model)
    parser.add_argument("--misses", action="store_true", help="list the local classifier's mistakes on dev")
    args = parser.parse_args()
    cases = load(args.data)
    parts = {split: [c for c in cases if c.split == split] for split in dict.fromkeys(c.split for c in cases)}
    parts["all"] = cases
    for name, part in parts.items():
        print(render(score(part, baseline), f"baseline libs.optout, {name}"), end="\n\n")
        print(render(score(part, local), f"local, {name}"), end="\n\n")
    if args.misses:
        for case, got in score(parts["dev"], local).misses:
            detail = classify_local(case.text, received_at=case.received_at).matched
            print(f"{case.intent.value:>16} -> {got.value:<16} {detail!r:<30} {case.text[:90]!r}")
    if args.openai:
        key = os.environ.get("SDR_OPENAI_API_KEY", "sk-local")
        client = make_client(key, timeout=30, max_retries=1, base_url=args.openai)
        settings = ClassifierSettings(openai_model=args.model)

        def model(case: Case) -> ReplyClassification:
            return classify_reply(case.text, received_at=case.received_at, client=client, settings=settings).result

        print(render(score(cases, model), f"openai {args.model}, all"))


if __name__ == "__main__":
    main()
