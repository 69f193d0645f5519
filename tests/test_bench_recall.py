"""The LoCoMo runner on a small file in the LoCoMo format, made here: its contract holds."""

from __future__ import annotations

import json
import subprocess
import sys


def test_recall_runner_reads_the_given_file_and_ends_with_one_json_line(tmp_path):
    conversation = {
        "speaker_a": "Ana",
        "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a kitten called Pepper yesterday!"},
            {"speaker": "Ben", "dia_id": "D1:2", "text": "Congrats! I am training for the Berlin marathon."},
            {
                "speaker": "Ana",
                "dia_id": "D1:3",
                "text": "My sister works as a nurse in Porto.",
                "blip_caption": "a photo of a hospital",
            },
        ],
        "session_2_date_time": "10:00 am on 20 May, 2023",
        "session_2": [
            {"speaker": "Ben", "dia_id": "D2:1", "text": "I finished the race in under four hours."},
            {"speaker": "Ana", "dia_id": "D2:2", "text": "Pepper knocked my plant over this morning."},
        ],
    }
    data = [
        {
            "sample_id": "tiny",
            "conversation": conversation,
            "qa": [
                {"question": "What is the name of Ana's cat?", "answer": "Pepper", "evidence": ["D1:1"], "category": 1},
                {
                    "question": "Which marathon is Ben training for?",
                    "answer": "Berlin",
                    "evidence": ["D1:2"],
                    "category": 4,
                },
                {"question": "Where does Ana's sister work?", "answer": "Porto", "evidence": ["D1:3"], "category": 4},
                {"question": "Adversarial question", "answer": "", "evidence": [], "category": 5},
            ],
        }
    ]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    r = subprocess.run(
        [sys.executable, "-m", "bench.recall", "--data", str(path), "--out", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(__import__("pathlib").Path(__file__).parents[1]),
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["questions"] == 3 and result["turns"] == 5
    for key in ("r_at_5", "r_at_10", "hit_at_5", "mrr"):
        assert 0.0 <= result[key] <= 1.0
    assert result["r_at_5"] == 1.0  # five memories: every evidence turn is in the top 5
    assert result["recall_p50_ms"] > 0 and result["recall_p95_ms"] >= result["recall_p50_ms"]
    r = subprocess.run(
        [sys.executable, "-m", "bench.recall", "--data", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(__import__("pathlib").Path(__file__).parents[1]),
    )
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
