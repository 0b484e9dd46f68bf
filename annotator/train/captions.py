"""Caption metrics (CIDEr, METEOR) of answers against the dataset's, raw or through COCOEvalCap's tokenizer.

The published GCG evaluations hand both texts to `COCOEvalCap`, whose first step is the PTB tokenizer
(Stanford CoreNLP, a Java program): lower case, punctuation removed. Its CIDEr and METEOR then score the
tokenized texts; that is what `tokenize=True` does (SPICE, the one scorer that downloads models, is left out).
Without Java the PTB tokenizer and METEOR cannot run, and those metrics are skipped with a message.
"""

from __future__ import annotations

import shutil

NO_JAVA = "skipped: needs Java (apt-get install default-jre-headless)"
NO_PACKAGE = "skipped: pip install 'annotator[eval]' (pycocoevalcap)"


def caption_scores(refs: list[str], hyps: list[str], tokenize: bool) -> dict[str, float | str]:
    """CIDEr and METEOR of `hyps` against one reference each (an empty text scores as '.' untokenized, as
    before, and as an empty string through the tokenizer, as the references do)."""
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        return {"CIDEr": NO_PACKAGE, "METEOR": NO_PACKAGE}
    java = shutil.which("java") is not None
    if tokenize and not java:
        return {"CIDEr": NO_JAVA, "METEOR": NO_JAVA}
    if tokenize:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({str(n): [{"caption": t}] for n, t in enumerate(refs)})
        res = tokenizer.tokenize({str(n): [{"caption": t}] for n, t in enumerate(hyps)})
    else:
        gts = {str(n): [t or "."] for n, t in enumerate(refs)}
        res = {str(n): [t or "."] for n, t in enumerate(hyps)}
    out: dict[str, float | str] = {"CIDEr": round(float(Cider().compute_score(gts, res)[0]), 6)}
    if not java:
        out["METEOR"] = NO_JAVA
        return out
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()  # a Java subprocess, stopped when the scorer is collected
    out["METEOR"] = round(float(meteor.compute_score(gts, res)[0]), 6)
    del meteor
    return out
