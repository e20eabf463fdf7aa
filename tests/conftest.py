import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEED = Path(os.environ.get("SOULC_SEED_DIR", REPO.parent / "shared" / "seed"))


@pytest.fixture(scope="session")
def seed():
    """Paths of the seed system's files (../shared/seed beside the checkout)."""
    if not (SEED / "soul.bin").is_file():
        pytest.fail(f"the seed files are missing: expected them in {SEED} (or set SOULC_SEED_DIR)")

    class Seed:
        dir = SEED
        soul_bin = SEED / "soul.bin"
        tokenizer = SEED / "tokenizer.json"
        weights = SEED / "weights.pt"
        replies = json.loads((SEED / "replies.json").read_text())
    return Seed


@pytest.fixture(scope="session")
def seed_program(seed):
    from soulc.frontends.soulbin import load_soulbin
    from soulc.frontends.tokenizer_json import load_tokenizer
    return load_soulbin(seed.soul_bin, load_tokenizer(seed.tokenizer))


def run_soulc(*args, input=None, cwd=None):
    """Runs the soulc command as a user would; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "soulc", *map(str, args)], input=input,
                          capture_output=True, text=True, cwd=cwd, timeout=600)
