"""Synthetic words for benchmark memories: 200 made-up words, so texts match no real vocabulary
and recall work is the same on every run."""

WORDS = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "xe", "zu")
    for b in (
        "bar",
        "cen",
        "dol",
        "fip",
        "gor",
        "hux",
        "jal",
        "kem",
        "lun",
        "mor",
        "nip",
        "pal",
        "quo",
        "rem",
        "sul",
        "tak",
        "ulm",
        "vor",
        "wen",
        "yal",
    )
]
