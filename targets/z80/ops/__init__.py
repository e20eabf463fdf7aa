"""Z80 routines for the IR's ops, one module per op; each documents its calling convention."""
