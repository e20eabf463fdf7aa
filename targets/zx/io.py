"""The chat loop's I/O on a ZX Spectrum, through the 48K ROM (also paged in on the 128K).

Printing goes through RST 16 on channel 2 (the main screen), which wraps at column 32.
SCR_CT is kept at 255 so the ROM never stops at `scroll?`. Keys come from the ROM's own
interrupt-driven keyboard scan: FLAGS bit 5 says a new key is in LAST_K; FLAGS bit 3 keeps
the scan in L mode (letters lower case, CAPS SHIFT for capitals, SYMBOL SHIFT for symbols).
The ROM's routines need IY = 0x5C3A, so every entry here sets it. Interrupts are on only
while a line is typed; the model computes with them off.
"""
from __future__ import annotations

SYSVARS = 0x5C3A          # IY points here for the ROM
LAST_K = 0x5C08
SCR_CT = 0x5C8C
BORDCR = 0x5C48
CL_ALL = 0x0DAF           # clear the whole screen
CHAN_OPEN = 0x1601        # A = stream


def spectrum_io_asm() -> str:
    return f"""
; ---- Spectrum I/O (targets/zx/io.py) ----
io_init:
        LD IY,{SYSVARS}
        RES 3,(IY+48)                   ; FLAGS2: caps lock off
        CALL {CL_ALL}
        LD A,2
        CALL {CHAN_OPEN}
        RET

io_print_char:                          ; A = character
        PUSH BC
        PUSH DE
        PUSH HL
        LD IY,{SYSVARS}
        LD C,A
        LD A,255
        LD ({SCR_CT}),A                  ; never ask scroll?
        LD A,C
        RST 16
        POP HL
        POP DE
        POP BC
        RET

io_newline:
        LD A,13
        JR io_print_char

io_read_line:                           ; HL = buffer, B = most characters
        LD IY,{SYSVARS}
        LD C,0
        EI
io_read_key:
        SET 3,(IY+1)                    ; L mode
        LD (IY+7),0                     ; MODE: no E or G mode
        RES 5,(IY+1)
io_read_wait:
        HALT
        BIT 5,(IY+1)
        JR Z,io_read_wait
        LD A,({LAST_K})
        CP 13
        JR Z,io_read_enter
        CP 12
        JR Z,io_read_delete
        CP 32
        JR C,io_read_key                ; other control codes: ignored
        CP 127
        JR NC,io_read_key               ; keywords and graphics: ignored
        LD D,A
        LD A,C
        CP B
        JR NC,io_read_key               ; the line is full
        LD A,D
        LD (HL),A
        INC HL
        INC C
        CALL io_print_char
        JR io_read_key
io_read_delete:
        LD A,C
        OR A
        JR Z,io_read_key                ; nothing to delete
        DEC HL
        DEC C
        LD A,8
        CALL io_print_char
        LD A,32
        CALL io_print_char
        LD A,8
        CALL io_print_char
        JR io_read_key
io_read_enter:
        LD (HL),0
        DI
        RET

io_thinking:                            ; A = position: the border shows it
        AND 7
        OUT (254),A
        RET

io_token_done:                          ; a short blip on the beeper, not cut by an interrupt
        LD A,I                          ; (P/V = interrupts enabled: put back after)
        PUSH AF
        DI
        PUSH BC
        LD B,8
        LD A,({BORDCR})
        RRCA
        RRCA
        RRCA
        AND 7
io_blip:
        XOR 16
        OUT (254),A
        LD C,30
io_blip_wait:
        DEC C
        JR NZ,io_blip_wait
        DJNZ io_blip
        POP BC
        POP AF
        RET PO
        EI
        RET

io_reply_done:                          ; the border back to its colour
        LD A,({BORDCR})
        RRCA
        RRCA
        RRCA
        AND 7
        OUT (254),A
        RET
"""
