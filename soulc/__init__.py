"""soulc: a compiler for tiny transformers on 8-bit home computers."""
