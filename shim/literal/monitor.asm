; monitor.asm (variant literal): the monitor side (prologue, epilogue, guest loop).
%include "monitor.inc"
