"""Run-time buffers go to a machine's spare RAM, in order, while they fit (targets/z80/buffers.py)."""
from soulc.targets.z80.buffers import buffers_asm
from soulc.targets.z80.chatloop import chat_loop_asm


def test_buffers_fill_the_spare_ram_in_order_while_they_fit():
    asm, rest = buffers_asm([("a", 100), ("b", 200), ("c", 50), ("d", 107)], (0x5B00, 0x5C00))
    assert asm == "a EQU 0x5B00\nb: DEFS 200\nc EQU 0x5B64\nd: DEFS 107\n"
    assert rest == (0x5B96, 0x5C00)


def test_without_spare_ram_every_buffer_is_in_the_code():
    asm, rest = buffers_asm([("a", 1), ("b", 2)], None)
    assert asm == "a: DEFS 1\nb: DEFS 2\n" and rest is None


def test_a_long_context_keeps_its_prompt_buffer_in_the_code(seed_program):
    from soulc.passes.kv_cache import kv_cache
    program = kv_cache(seed_program)
    program.settings.context = 200          # 65 + 64 + 200 bytes do not fit 256
    asm = chat_loop_asm(program, "t", "ZX> ", (0x5B00, 0x5C00))
    assert "chat_line EQU 0x5B00" in asm and "chat_ids EQU 0x5B41" in asm and "chat_seq: DEFS 200" in asm
