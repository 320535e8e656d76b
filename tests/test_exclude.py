"""Held-out text is kept out of training data by content (mote.train.exclude): a
held-out document is found however differently it is formatted, other documents
stay, and what still overlaps is measured."""

from __future__ import annotations

import pytest

from mote.model import MoteError
from mote.train.exclude import MAX_SHARED, exclude

CHAPTER = ("In the beginning God created the heaven and the earth. And the earth was without form, "
           "and void; and darkness was upon the face of the deep. And the Spirit of God moved upon "
           "the face of the waters. And God said, Let there be light: and there was light.")
OTHER = ("Now the serpent was more subtil than any beast of the field which the LORD God had made. "
         "And he said unto the woman, Yea, hath God said, Ye shall not eat of every tree of the garden?")
SCENE = ("ROMEO. But soft, what light through yonder window breaks? It is the east, and Juliet is the "
         "sun. Arise, fair sun, and kill the envious moon, who is already sick and pale with grief.")


def test_held_out_documents_are_found_by_content(tmp_path):
    held = tmp_path / "heldout.txt"
    # the held-out copy: one line, no heading, different quotes
    held.write_text(CHAPTER.replace("\n", " ").replace("Let there be light", "'Let there be light'")
                    + "\n\n" + "Some text of a source the corpus does not have at all, in any way.")
    docs = [("genesis-1.txt", "Genesis 1\n\n" + CHAPTER.replace(". ", ".\n")),
            ("genesis-3.txt", "Genesis 3\n\n" + OTHER), ("romeo.txt", SCENE)]
    kept, report = exclude(docs, [held])
    assert [name for name, _ in kept] == ["genesis-3.txt", "romeo.txt"]
    assert [name for name, _ in report.dropped] == ["genesis-1.txt"] and report.dropped[0][1] > 0.9
    assert report.kept_documents == 2 and report.leaked == 0
    assert "1 documents dropped" in report.describe()


def test_a_shared_phrase_is_not_a_held_out_document(tmp_path):
    held = tmp_path / "heldout.txt"
    held.write_text(CHAPTER)
    phrase = " ".join(CHAPTER.split()[:9])  # one 8-word shingle in common (twice)
    long_doc = " ".join([OTHER] * 2 + [phrase] + [SCENE] * 4)
    kept, report = exclude([("long.txt", long_doc)], [held])
    assert [n for n, _ in kept] == ["long.txt"] and report.dropped == []
    assert 0 < report.leaked < MAX_SHARED


def test_bad_held_out_text(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("too few words")
    with pytest.raises(MoteError, match="fewer than 8 words"):
        exclude([("a", SCENE)], [short])
    with pytest.raises(MoteError, match="cannot read held-out text"):
        exclude([("a", SCENE)], [tmp_path / "missing.txt"])
    held = tmp_path / "scene.txt"
    held.write_text(SCENE)
    with pytest.raises(MoteError, match="nothing left to train on"):
        exclude([("a", SCENE)], [held])
