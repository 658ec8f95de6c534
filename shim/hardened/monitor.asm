; monitor.asm (variant hardened): the same monitor code; the builder makes it swap the PDE.
%include "monitor.inc"
