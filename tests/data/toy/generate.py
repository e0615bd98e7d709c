"""Write the toy corpus: short synthetic image captions in Multi30k's file layout.

The fast test tier (``python3 -m pytest -m "not slow"``) loads data, trains a tokenizer and a
model, decodes and scores on this corpus instead of the real Multi30k (Elliott et al. 2016), so
that it needs no download and runs in minutes. Every sentence is built from the phrase tables
below (a subject, an optional garment, a verb, a place), translated phrase by phrase into German,
French and Czech: parallel, varied enough for a tokenizer and a tiny translator, and free of any
licence. The files are not committed: the tests write them (``write``) into a temporary folder,
byte for byte the same each time (a fixed seed, gzip without a timestamp), and ``tmtlib.data``
checks them against the committed ``multi30k.sha256`` (``python3 tests/data/toy/generate.py``
rewrites it after a change here).

Task 1 (parallel en/de/fr/cs): ``train`` 400 pairs, ``val`` and ``test_2016_flickr`` 50 each,
``test_2018_flickr`` 30; ``test_2017_flickr`` and ``test_2017_mscoco`` are left out on purpose,
so the code path of a partial mirror runs too. Task 2 (en and de): five captions per scene, each
with another garment, 120 training scenes and 40 validation scenes.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import random
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LANGS = ("en", "de", "fr", "cs")

SUBJECTS = [
    ("A man", "Ein Mann", "Un homme", "Muž"),
    ("A woman", "Eine Frau", "Une femme", "Žena"),
    ("A young boy", "Ein kleiner Junge", "Un jeune garçon", "Malý chlapec"),
    ("A little girl", "Ein kleines Mädchen", "Une petite fille", "Malá holčička"),
    ("A dog", "Ein Hund", "Un chien", "Pes"),
    ("An old man", "Ein alter Mann", "Un vieil homme", "Starý muž"),
    ("A child", "Ein Kind", "Un enfant", "Dítě"),
    ("A brown dog", "Ein brauner Hund", "Un chien marron", "Hnědý pes"),
]
GARMENTS = [
    ("", "", "", ""),
    ("in a red shirt", "in einem roten Hemd", "en chemise rouge", "v červené košili"),
    ("with a blue hat", "mit einem blauen Hut", "avec un chapeau bleu", "s modrým kloboukem"),
    ("in a black jacket", "in einer schwarzen Jacke", "en veste noire", "v černé bundě"),
    ("with a green bag", "mit einer grünen Tasche", "avec un sac vert", "se zelenou taškou"),
]
VERBS = [
    ("is running", "rennt", "court", "běží"),
    ("is walking", "geht", "marche", "jde"),
    ("is playing", "spielt", "joue", "si hraje"),
    ("is waiting", "wartet", "attend", "čeká"),
    ("is sleeping", "schläft", "dort", "spí"),
    ("is eating", "isst", "mange", "jí"),
]
PLACES = [
    ("on the beach", "am Strand", "sur la plage", "na pláži"),
    ("in the park", "im Park", "dans le parc", "v parku"),
    ("in the snow", "im Schnee", "dans la neige", "ve sněhu"),
    ("near the river", "am Fluss", "près de la rivière", "u řeky"),
    ("on the street", "auf der Straße", "dans la rue", "na ulici"),
    ("in front of a house", "vor einem Haus", "devant une maison", "před domem"),
    ("on the grass", "auf der Wiese", "sur l'herbe", "na trávě"),
    ("in the kitchen", "in der Küche", "dans la cuisine", "v kuchyni"),
]
TASK1_SPLITS = {"train": 400, "val": 50, "test_2016_flickr": 50, "test_2018_flickr": 30}
TASK2_SCENES = {"train": 120, "val": 40}


def caption(subject: int, garment: int, verb: int, place: int, lang: int) -> str:
    """One caption in ``LANGS[lang]``: subject, garment (may be empty), verb and place."""
    words = [SUBJECTS[subject][lang], GARMENTS[garment][lang], VERBS[verb][lang]]
    return " ".join(w for w in [*words, PLACES[place][lang]] if w) + "."


def task1(rng: random.Random) -> dict[str, list[str]]:
    """Distinct parallel captions, split by ``TASK1_SPLITS``: relpath -> lines."""
    every = list(itertools.product(*(range(len(t)) for t in (SUBJECTS, GARMENTS, VERBS, PLACES))))
    drawn = iter(rng.sample(every, sum(TASK1_SPLITS.values())))
    files = {}
    for split, n in TASK1_SPLITS.items():
        chosen = [next(drawn) for _ in range(n)]
        for lang in range(len(LANGS)):
            lines = [caption(*parts, lang) for parts in chosen]
            files[f"data/task1/raw/{split}.{LANGS[lang]}.gz"] = lines
    return files


def task2(rng: random.Random) -> dict[str, list[str]]:
    """Five captions of each scene (another garment each): relpath -> lines, en and de."""
    scenes = list(itertools.product(range(len(SUBJECTS)), range(len(VERBS)), range(len(PLACES))))
    drawn = iter(rng.sample(scenes, sum(TASK2_SCENES.values())))
    files = {}
    for split, n in TASK2_SCENES.items():
        chosen = [next(drawn) for _ in range(n)]
        for k, lang in itertools.product(range(5), range(2)):
            lines = [
                caption(subject, (k + i) % len(GARMENTS), verb, place, lang)
                for i, (subject, verb, place) in enumerate(chosen)
            ]
            files[f"data/task2/raw/{split}.{k + 1}.{LANGS[lang]}.gz"] = lines
    return files


def write(root: Path) -> list[str]:
    """Write the corpus under ``root`` in Multi30k's layout; return its checksum lines
    (``sha256  relpath``), as ``multi30k.sha256`` lists them."""
    rng = random.Random(20)
    files = {**task1(rng), **task2(rng)}
    manifest = []
    for relpath, lines in sorted(files.items()):
        payload = gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        manifest.append(f"{hashlib.sha256(payload).hexdigest()}  {relpath}\n")
    return manifest


def main() -> None:
    """Rewrite the committed checksums (the corpus itself is written where the tests need it)."""
    with tempfile.TemporaryDirectory() as root:
        (HERE / "multi30k.sha256").write_text("".join(write(Path(root))))


if __name__ == "__main__":
    main()
